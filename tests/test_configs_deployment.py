"""Deployment-student COCO configs (RTMDet, YOLOX; configs/_base_/pairs/{rtmdet,yolox}_*_coco.py)
build at full size from mmdet 3.3's configs (local teacher weights, no downloads) and take
one loss step; their runtime keeps the distillation hooks and the student's own."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd_det.registry import MODELS
from tests.conftest import with_local_teachers
from tests.test_configs import _samples

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# config, loss key, (student, teacher) neck widths
COCO_CONFIGS = [
    ('configs/pkd/pkd_rtmdet_s_tiny.py', 'loss_pkd', (96, 128)),
    ('configs/pkd/pkd_rtmdet_m_s.py', 'loss_pkd', (128, 192)),
    ('configs/pkd/pkd_yolox_s_tiny.py', 'loss_pkd', (96, 128)),
    ('configs/pkd/pkd_yolox_l_s.py', 'loss_pkd', (128, 256)),
    ('configs/cwd/cwd_rtmdet_s_tiny.py', 'loss_cwd_fpn2', (96, 128)),
    ('configs/cwd/cwd_rtmdet_m_s.py', 'loss_cwd_fpn0', (128, 192)),
    ('configs/mgd/mgd_rtmdet_m_s.py', 'loss_mgd', (128, 192)),
    ('configs/fgd/fgd_rtmdet_m_s.py', 'loss_fgd.loss_fg', (128, 192)),
    ('configs/frs/frs_rtmdet_m_s.py', 'loss_frs_cls', (128, 192)),
    ('configs/kd/kd_rtmdet_s_tiny.py', 'loss_kd', (96, 128)),
    ('configs/cwd/cwd_yolox_s_tiny.py', 'loss_cwd', (96, 128)),
    ('configs/mgd/mgd_yolox_s_tiny.py', 'loss_mgd', (96, 128)),
    ('configs/fgd/fgd_yolox_s_tiny.py', 'loss_fgd.loss_fg', (96, 128)),
]


def _build(config: str, tmp_path) -> torch.nn.Module:
    cfg = with_local_teachers(Config.fromfile(osp.join(ROOT, config)), tmp_path, probe_size=64)
    model = MODELS.build(cfg.model)
    model.set_progress(iter=0, epoch=0)
    return model


@pytest.mark.parametrize('config,loss,widths', COCO_CONFIGS)
def test_deployment_coco_config_runs_one_loss_step(config, loss, widths, tmp_path, monkeypatch):
    """Full-width mmdet RTMDet / YOLOX pairs: three neck levels of strides 8/16/32 in
    both detectors, the expected widths, a finite loss with gradients reaching the
    student only; the published schedule's stop epoch is set."""
    monkeypatch.chdir(ROOT)
    model = _build(config, tmp_path)
    assert model.strides == [8, 16, 32]
    s_neck, t_neck = model.student.neck, model.teacher.neck
    assert (s_neck.out_channels, t_neck.out_channels) == widths
    assert model.schedule.stop_epoch == (285 if 'yolox' in config else 280)
    losses = model.loss(torch.rand(2, 3, 64, 64) * 255, _samples(64))
    value = losses[f'distill.{loss}']
    assert torch.isfinite(value) and value > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.backbone.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


def test_cwd_rtmdet_config_records_the_pre_bn_neck_convs(tmp_path, monkeypatch):
    """mmyolo's recipe: one CWD loss per out_convs.<i>.conv (64 px: 8x8, 4x4, 2x2), the
    teacher's BN kept (a folded BN would be inside the recorded conv)."""
    monkeypatch.chdir(ROOT)
    model = _build('configs/cwd/cwd_rtmdet_s_tiny.py', tmp_path)
    assert isinstance(model.teacher.neck.out_convs[0].bn, torch.nn.modules.batchnorm._BatchNorm)
    model.record_step(torch.rand(2, 3, 64, 64) * 255, _samples(64))
    shapes = [tuple(model.teacher_recorder.get(f'fpn{i}')[0].shape) for i in range(3)]
    assert shapes == [(2, 128, 8, 8), (2, 128, 4, 4), (2, 128, 2, 2)]
    assert [
        a.convs[0].in_channels
        for a in (model.distill_losses[f'loss_cwd_fpn{i}'].adapters['s_feats'] for i in range(3))
    ] == [96] * 3


@pytest.mark.parametrize(
    'pair',
    ['rtmdet_s_tiny_coco.py', 'rtmdet_m_s_coco.py', 'yolox_s_tiny_coco.py', 'yolox_l_s_coco.py'])
def test_deployment_pair_hooks(pair, monkeypatch):
    """A pair's custom_hooks are distill_runtime.py's, then the student config's (EMA,
    pipeline switch; YOLOX's mode switch wrapped in StudentHook), none lost."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/pairs', pair))
    runtime = Config.fromfile(osp.join(ROOT, 'configs/_base_/distill_runtime.py')).custom_hooks
    assert cfg.default_scope == 'mmkd_det'
    assert cfg.custom_hooks[:len(runtime)] == runtime
    from mmengine.hub import get_config
    theirs = get_config(cfg.model.student.cfg_path).custom_hooks
    ours = cfg.custom_hooks[len(runtime):]
    unwrapped = [h.hook if h.type == 'StudentHook' else h for h in ours]
    assert [h.type for h in unwrapped] == [h.type for h in theirs]
    for mine, their in zip(unwrapped, theirs):
        assert {k: v for k, v in mine.items() if k != 'switch_pipeline'} == \
            {k: v for k, v in their.items() if k != 'switch_pipeline'}
    wrapped = [h.hook.type for h in ours if h.type == 'StudentHook']
    assert wrapped == (['YOLOXModeSwitchHook'] if pair.startswith('yolox') else [])
    assert cfg.train_cfg.max_epochs == 300


@pytest.mark.parametrize('folder', ['rtmdet', 'yolox'])
def test_detector_folder_readme_names_every_config(folder):
    """configs/rtmdet/ and configs/yolox/ describe each of their configs, as the other
    detector folders (tests/test_configs.py DETECTORS)."""
    import glob
    with open(osp.join(ROOT, 'configs', folder, 'README.md')) as f:
        text = f.read()
    names = [osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', folder, '*.py'))]
    assert len(names) == 2 and all(n in text for n in names)


def test_deployment_benchmark_runs_point_at_the_synthetic_configs():
    """The 'deployment' preset's runs exist, each distilled run is taught by its family's
    teacher run, and gains pair with that family's student."""
    from mmkd_det.analysis.benchmark.matrix import PRESETS, RUNS
    preset = PRESETS['deployment']
    assert preset[0] == 'RTMDet student' and 'YOLOX PKD' in preset
    for name in preset + ['RTMDet teacher', 'YOLOX teacher']:
        assert osp.isfile(osp.join(ROOT, RUNS[name].config)), name
        family = name.split()[0]
        if name.split()[1] not in ('teacher', 'student'):
            assert RUNS[name].teacher == f'{family} teacher'
            assert family.lower() in RUNS[name].config
