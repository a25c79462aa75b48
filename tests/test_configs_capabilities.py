"""The COCO configs of the Distiller's capabilities (several teachers, label-free
training) build at full size with local teacher weights and take one loss step."""
import os.path as osp

import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmkd_det.registry import MODELS
from tests.conftest import ROOT, with_local_teachers


def _unlabelled_samples(size: int) -> list:
    samples = []
    for _ in range(2):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                pad_shape=(size, size),
                batch_input_shape=(size, size),
                scale_factor=(1., 1.),
                ori_shape=(size, size)))
        s.gt_instances = InstanceData()  # an image folder gives no boxes
        samples.append(s)
    return samples


def test_two_teacher_coco_config_runs_one_loss_step(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = with_local_teachers(
        Config.fromfile(
            osp.join(ROOT, 'configs/multi_teacher/pkd_retina_gfl_r101_retina_r50_coco.py')),
        tmp_path,
        probe_size=128)
    model = MODELS.build(cfg.model)
    assert model.teachers['retina'].backbone.depth == 101
    assert type(model.teachers['gfl'].bbox_head).__name__ == 'GFLHead'
    assert model.student_recorder.specs['fpn']['levels'] == [0, 1, 2, 3]
    from tests.test_configs import _samples
    losses = model.loss(torch.rand(2, 3, 128, 128), _samples(128))
    for key in ('distill.loss_pkd_retina', 'distill.loss_pkd_gfl'):
        assert torch.isfinite(losses[key]) and losses[key] > 0


def test_label_free_coco_config_runs_one_loss_step(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/label_free/pkd_retina_r101_r50_coco_pseudo.py'))
    assert cfg.train_dataloader.dataset.type == 'ImageFolderDataset'
    with_local_teachers(cfg, tmp_path, probe_size=128)
    model = MODELS.build(cfg.model)
    assert model.labels == 'pseudo' and model.labeler.score_thr == 0.5
    # a random teacher scores about sigmoid(-4.6) = 0.01: let it find boxes above 0.5
    model.teacher.bbox_head.retina_cls.bias.data.fill_(1.0)
    samples = _unlabelled_samples(128)
    losses = model.loss(torch.rand(2, 3, 128, 128), samples)
    assert all(len(s.gt_instances) > 0 for s in samples)
    for key in ('loss_cls', 'distill.loss_pkd'):
        value = losses[key] if key == 'distill.loss_pkd' else sum(losses[key])
        assert torch.isfinite(value) and value > 0
