"""The cross-family COCO configs (docs/cross_family.md) build at full size with a local
teacher checkpoint, pair the teacher's and the student's FPN levels of equal stride, and
take one distillation step."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd_det.registry import MODELS
from tests.conftest import with_local_teachers
from tests.test_configs import ROOT, _samples

# config -> (student strides, teacher strides) of the paired levels
CROSS_FAMILY = {
    'configs/pkd/pkd_faster_rcnn_r101_retina_r50.py': ([8, 16, 32, 64], [8, 16, 32, 64]),
    'configs/pkd/pkd_retina_x101_gfl_r50.py': ([8, 16, 32, 64], [8, 16, 32, 64]),
    'configs/pkd/pkd_mask_rcnn_swin_s_retina_r50.py': ([8, 16, 32, 64], [8, 16, 32, 64]),
    'configs/pkd/pkd_dino_r50_retina_r50.py': ([8, 16, 32, 64], [8, 16, 32, 64]),
}
SIZE = 128


def _build(config: str, tmp_path) -> torch.nn.Module:
    """The config's Distiller with its teacher weights from a local (random) checkpoint."""
    cfg = with_local_teachers(Config.fromfile(osp.join(ROOT, config)), tmp_path, probe_size=SIZE)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('config', sorted(CROSS_FAMILY))
def test_cross_family_coco_config_pairs_strides_and_steps(config, tmp_path, monkeypatch):
    """Recorded levels have the sizes of the paired strides on both sides (the probe image
    is SIZE px), the widths match (no adapter), and one step gives a finite PKD loss."""
    monkeypatch.chdir(ROOT)
    model = _build(config, tmp_path)
    model.set_progress(iter=0)
    x = torch.rand(2, 3, SIZE, SIZE)
    s_strides, t_strides = CROSS_FAMILY[config]
    with torch.no_grad():
        s_feats = model.student.neck(model.student.backbone(x))
        t_feats = model.teacher.neck(model.teacher.backbone(x))
    s_levels = model.student_recorder.specs['fpn']['levels']
    t_levels = model.teacher_recorder.specs['fpn']['levels']
    assert [SIZE // s_feats[i].shape[-1] for i in s_levels] == s_strides
    assert [SIZE // t_feats[i].shape[-1] for i in t_levels] == t_strides
    assert not model.distill_losses['loss_pkd'].adapters
    losses = model.loss(x, _samples(SIZE))
    value = losses['distill.loss_pkd']
    assert torch.isfinite(value) and value > 0
