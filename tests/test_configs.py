"""Every shipped config parses, and its Distiller's teacher/student configs resolve."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmkd_det.models.distillers import load_model_cfg
from mmkd_det.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_parses_and_models_resolve(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmkd_det'
    if cfg.model.type == 'Distiller':
        s = load_model_cfg(cfg.model.student, 'student')
        t = load_model_cfg(cfg.model.teacher, 'teacher')
        for m in (s, t):
            head = m.get('bbox_head') or m.get('roi_head', {}).get('bbox_head')
            assert head is not None
        s_head = s.get('bbox_head') or s.roi_head.bbox_head
        t_head = t.get('bbox_head') or t.roi_head.bbox_head
        assert s_head.num_classes == t_head.num_classes
        assert cfg.model.teacher_ckpt
        for name in cfg.model.distill_losses:
            assert 'loss' in name


def test_coco_config_builds_with_a_local_teacher(tmp_path, monkeypatch):
    """configs/frs/frs_retina_r101_r50.py builds R101 -> R50 (weights from a local file)."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/frs/frs_retina_r101_r50.py'))
    teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
    ckpt = str(tmp_path / 'r101.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher_ckpt = ckpt
    model = MODELS.build(cfg.model)
    assert model.teacher.backbone.depth == 101 and model.student.backbone.depth == 50
    assert model.teacher_heads == ['bbox_head']
    adapters = model.distill_losses['loss_frs_fpn'].adapters['s_feats'].convs
    assert len(adapters) == 5 and adapters[0].kernel_size == (3, 3)


def test_train_without_coco_fails_clearly(tmp_path):
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/train.py'),
         osp.join(ROOT, 'configs/frs/frs_retina_r101_r50.py'), '--work-dir', str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'Dataset files not found' in proc.stderr and 'data/coco/' in proc.stderr


@pytest.mark.parametrize('config', ['configs/tid/tid_gfl_r101_r50.py', 'configs/tid/tid_atss_r101_r50.py'])
def test_tid_coco_config_runs_one_loss_step(config, tmp_path, monkeypatch):
    """The paper's GFL/ATSS pairs build at full width (R101 -> R50, local teacher
    weights) and give a finite TID loss with their ATSS assigners on a small batch."""
    from mmengine.structures import InstanceData
    from mmdet.structures import DetDataSample
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
    ckpt = str(tmp_path / 't.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher_ckpt = ckpt
    cfg.model.probe_size = 128
    model = MODELS.build(cfg.model)
    samples = []
    for boxes in ([[8., 8., 70., 60.], [0., 90., 40., 128.]], []):
        s = DetDataSample(metainfo=dict(img_shape=(128, 128), pad_shape=(128, 128),
                                        batch_input_shape=(128, 128), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(bboxes=torch.tensor(boxes).view(-1, 4),
                                      labels=torch.zeros(len(boxes), dtype=torch.long))
        samples.append(s)
    losses = model.loss(torch.rand(2, 3, 128, 128), samples)
    value = losses['distill.loss_tid']
    assert torch.isfinite(value) and value > 0


def _samples(size: int, with_masks: bool = False) -> list:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for boxes in ([[8., 8., 70., 60.], [0., 90., 40., 128.]], [[30., 30., 90., 100.]]):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), pad_shape=(size, size),
                                        batch_input_shape=(size, size), scale_factor=(1., 1.)))
        gt = InstanceData(bboxes=torch.tensor(boxes).view(-1, 4),
                          labels=torch.zeros(len(boxes), dtype=torch.long))
        if with_masks:
            masks = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes):
                masks[i, int(y0):int(y1), int(x0):int(x1)] = 1
            gt.masks = BitmapMasks(masks.numpy(), size, size)
        s.gt_instances = gt
        samples.append(s)
    return samples


@pytest.mark.parametrize('config', ['configs/skd/skd_faster_rcnn_r101_r50.py',
                                    'configs/skd/skd_faster_rcnn_r101_r50_backbone.py',
                                    'configs/skd/skd_retina_r101_r50.py',
                                    'configs/skd/skd_mask_rcnn_r101_r50.py'])
def test_skd_coco_config_runs_one_loss_step(config, tmp_path, monkeypatch):
    """Structured-KD COCO pairs build at full width (R101 -> R50, local teacher
    weights), with the paper's schedule, and give finite AT/AM/NLD terms and
    student (box, mask) losses; the non-local blocks follow the per-level strides."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert cfg.train_cfg.max_epochs == 24
    assert [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0].milestones == [18, 22]
    teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
    ckpt = str(tmp_path / 't.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher_ckpt = ckpt
    cfg.model.probe_size = 128
    model = MODELS.build(cfg.model)
    loss = model.distill_losses['loss_skd']
    assert [b.stride for b in loss.student_nonlocal][:2] == [8, 4]
    losses = model.loss(torch.rand(2, 3, 128, 128), _samples(128, 'mask' in config))
    for term in ('loss_at', 'loss_am', 'loss_nld'):
        value = losses[f'distill.loss_skd.{term}']
        assert torch.isfinite(value) and value > 0
    if 'mask' in config:
        assert torch.isfinite(losses['loss_mask']) and losses['loss_mask'] > 0


@pytest.mark.parametrize('config,loss', [
    ('configs/pkd/pkd_retina_r101_r50.py', 'loss_pkd'),
    ('configs/cwd/cwd_faster_rcnn_r101_r50.py', 'loss_cwd'),
    ('configs/mgd/mgd_retina_r101_r50_inherit.py', 'loss_mgd'),
    ('configs/ld/ld_gfl_r101_r50.py', 'loss_ld'),
    ('configs/kd/kd_retina_r101_r50.py', 'loss_kd'),
    ('configs/fitnet/fitnet_retina_r101_r50.py', 'loss_fitnet'),
    ('configs/fgfi/fgfi_faster_rcnn_r101_r50.py', 'loss_fgfi'),
    ('configs/defeat/defeat_faster_rcnn_r101_r50.py', 'loss_defeat.loss_fg'),
    ('configs/fgd/fgd_faster_rcnn_r101_r50.py', 'loss_fgd.loss_fg'),
    ('configs/fgd/fgd_retina_r101_r50_inherit.py', 'loss_fgd.loss_rel')])
def test_review_method_coco_configs_run_one_loss_step(config, loss, tmp_path, monkeypatch):
    """The review's methods build at full R101 -> R50 width and give a finite loss;
    PKD keeps the first four levels; MGD's inherit variant starts from the teacher."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
    ckpt = str(tmp_path / 't.pth')
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher_ckpt = ckpt
    cfg.model.probe_size = 128
    model = MODELS.build(cfg.model)
    if 'pkd' in config or 'fgd_faster' in config:
        assert len(model.student_recorder.specs['fpn']['levels']) == 4
    if 'inherit' in config:  # (init_weights would fetch torchvision's R50: tested elsewhere)
        assert torch.equal(model.student.neck.fpn_convs[0].conv.weight,
                           model.teacher.neck.fpn_convs[0].conv.weight)
    losses = model.loss(torch.rand(2, 3, 128, 128), _samples(128))
    value = losses[f'distill.{loss}']
    assert torch.isfinite(value) and value >= 0
