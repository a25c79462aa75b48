"""Deployment students (RTMDet, YOLOX) in the Distiller: their 3-level necks
(CSPNeXtPAFPN, YOLOXPAFPN) and heads (RTMDetSepBNHead, decoupled YOLOXHead) record
with the shapes computed by hand, FGD's GT masks land on the cells of strides 8/16/32,
a training step trains the student only; YOLOX's batch resizing, EMA and mode-switch
hooks work on a Distiller."""
import copy
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmkd_det.engine.hooks import StudentHook
from mmkd_det.registry import HOOKS, MODELS
from tests.conftest import ROOT, save_weights

# student / teacher of the synthetic configs: neck and head widths 32 / 64, 6 classes
WIDTHS = dict(student=32, teacher=64)
FIRST_LEVEL_SIZE = 96 // 8


def _model_cfg(det: str, role: str) -> dict:
    width = 'w32' if role == 'student' else 'w64'
    return Config.fromfile(osp.join(ROOT, f'configs/{det}/{det}_{width}_synthetic.py')).model


def _distiller(det: str, tmp_path, losses: dict, recorders=None, student=None, teacher=None):
    teacher = teacher or _model_cfg(det, 'teacher')
    ckpt = save_weights(teacher, str(tmp_path / f'{det}_t.pth'), seed=1)
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='Distiller',
            student=student or _model_cfg(det, 'student'),
            teacher=teacher,
            teacher_ckpt=ckpt,
            recorders=recorders or dict(fpn=dict(source='neck')),
            distill_losses=losses,
            probe_size=64))


def _batch(model, size: int = 96, boxes=((8., 8., 40., 40.), (50., 20., 90., 70.))) -> dict:
    """Two ``size`` px images (BGR 0-255) with ``boxes`` on the first, one box on the
    second, through the Distiller's data preprocessor in training mode."""
    from mmdet.structures import DetDataSample
    torch.manual_seed(0)
    samples = []
    for bxs in (boxes, ((10., 60., 60., 90.), )):
        s = DetDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor(bxs).view(-1, 4), labels=torch.arange(len(bxs)) % 6)
        samples.append(s)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in samples]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)


@pytest.mark.parametrize('det', ['rtmdet', 'yolox'])
def test_neck_and_head_records_have_hand_computed_shapes(det, tmp_path):
    """96 px: levels of 12, 6, 3 cells (strides 8/16/32); neck and head widths 32 / 64;
    per level RTMDet gives (cls 6, reg 4), YOLOX (cls 6, reg 4, objectness 1)."""
    recorders = dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1))
    if det == 'yolox':
        recorders['obj'] = dict(source='bbox_head', index=2)
    model = _distiller(det, tmp_path, dict(loss_pkd=dict(type='PKDLoss', adapter='auto')),
                       recorders)
    assert model.strides == [8, 16, 32]
    assert model.teacher_heads == ['bbox_head'] and model.student_heads == ['bbox_head']
    data = _batch(model)
    model.record_step(data['inputs'], data['data_samples'])
    sizes = [FIRST_LEVEL_SIZE // 2**lvl for lvl in range(3)]  # 12, 6, 3
    for role, rec in (('student', model.student_recorder), ('teacher', model.teacher_recorder)):
        assert [tuple(t.shape) for t in rec.get('fpn')] == [(2, WIDTHS[role], h, h) for h in sizes]
        assert [tuple(t.shape) for t in rec.get('cls')] == [(2, 6, h, h) for h in sizes]
        assert [tuple(t.shape) for t in rec.get('reg')] == [(2, 4, h, h) for h in sizes]
        if det == 'yolox':
            assert [tuple(t.shape) for t in rec.get('obj')] == [(2, 1, h, h) for h in sizes]
    # the head's priors sit on the same grid as the neck levels
    priors = model.student.bbox_head.prior_generator.grid_priors([(h, h) for h in sizes],
                                                                 device='cpu')
    assert [len(p) for p in priors] == [h * h for h in sizes]
    assert priors[1][1].tolist()[:2] == [16., 0.]  # offset 0: cell (0, 1) of stride 16


@pytest.mark.parametrize('det', ['rtmdet', 'yolox'])
def test_fgd_masks_land_on_the_cells_of_each_stride(det, tmp_path):
    """A box (8, 8, 24, 24) in a 64 px batch: FGD's window is floor(x0 W / 64) ..
    ceil(x1 W / 64) inclusive: cells 1-3 of the 8x8 level (value 1/9), 0-2 of the
    4x4 level (1/9), 0-1 of the 2x2 level (1/4: the whole map)."""
    model = _distiller(det, tmp_path, dict(loss_fgd=dict(type='FGDLoss')))
    loss = model.distill_losses['loss_fgd']
    feats = [torch.zeros(1, 64, h, h) for h in (8, 4, 2)]
    gt = [InstanceData(bboxes=torch.tensor([[8., 8., 24., 24.]]), labels=torch.tensor([0]))]
    metas = [dict(batch_input_shape=(64, 64), img_shape=(64, 64))]
    fg, bg = loss.masks(feats, gt, metas)
    expected = []
    for h, (lo, hi, value) in zip((8, 4, 2), ((1, 3, 1 / 9), (0, 2, 1 / 9), (0, 1, 1 / 4))):
        m = torch.zeros(1, h, h)
        m[0, lo:hi + 1, lo:hi + 1] = value
        expected.append(m)
    for got, want in zip(fg, expected):
        torch.testing.assert_close(got, want)
    assert bg[2].sum() == 0 and bg[0].sum().item() == pytest.approx(1.0)
    assert bg[0][0, 0, 0].item() == pytest.approx(1 / (64 - 9))


@pytest.mark.parametrize('det', ['rtmdet', 'yolox'])
def test_training_step_trains_the_student_only(det, tmp_path):
    """PKD + FGD: finite task and distillation losses; the student and the adapters get
    gradients, the frozen teacher none, and its weights stay the checkpoint's."""
    model = _distiller(
        det, tmp_path,
        dict(loss_pkd=dict(type='PKDLoss', adapter='auto'), loss_fgd=dict(type='FGDLoss')))
    model.train()
    before = copy.deepcopy(model.teacher.state_dict())
    data = _batch(model)
    losses = model.loss(data['inputs'], data['data_samples'], data.get('teacher_inputs'))
    total, log_vars = model.parse_losses(losses)
    for key in ('distill.loss_pkd', 'distill.loss_fgd.loss_fg', 'distill.loss_fgd.loss_bg'):
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    assert 'loss_cls' in log_vars and math.isfinite(log_vars['loss'])
    total.backward()
    neck_grads = [p.grad for p in model.student.neck.parameters()]
    assert all(g is not None for g in neck_grads) and any(g.abs().sum() > 0 for g in neck_grads)
    assert model.distill_losses['loss_pkd'].adapters['s_feats'].convs[0].weight.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    assert not model.teacher.training
    after = model.teacher.state_dict()
    # (BN folded into the convolutions at build: compare the folded state, unchanged)
    assert all(torch.equal(before[k], after[k]) for k in before)


def _yolox_with_batch_resize(size: int) -> dict:
    cfg = _model_cfg('yolox', 'student')
    cfg.data_preprocessor.batch_augments = [
        dict(
            type='BatchSyncRandomResize',
            random_size_range=(size, size),
            size_divisor=32,
            interval=1)
    ]
    return cfg


def test_batch_resize_runs_once_and_the_teacher_sees_that_batch(tmp_path):
    """YOLOX's BatchSyncRandomResize (here to 96 px from 64 px inputs) runs in the
    student's preprocessor only; the teacher (same normalisation, its own batch
    augment in its config) reuses the resized tensor, so both record the same grid and
    the GT boxes are rescaled once."""
    teacher = _model_cfg('yolox', 'teacher')
    teacher.data_preprocessor.batch_augments = _yolox_with_batch_resize(
        160).data_preprocessor.batch_augments
    model = _distiller(
        'yolox',
        tmp_path,
        dict(loss_pkd=dict(type='PKDLoss', adapter='auto')),
        student=_yolox_with_batch_resize(96),
        teacher=teacher)
    assert model.data_preprocessor.teacher is None
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 0)
    augment = model.data_preprocessor.student.batch_augments[0]
    augment._input_size = (96, 96)  # as if the previous iteration had drawn 96
    data = _batch(model, size=64, boxes=((8., 8., 24., 24.), ))
    assert tuple(data['inputs'].shape[-2:]) == (96, 96) and 'teacher_inputs' not in data
    assert data['data_samples'][0].gt_instances.bboxes.tolist() == [[12., 12., 36., 36.]]
    assert data['data_samples'][0].batch_input_shape == (96, 96)
    model.record_step(data['inputs'], data['data_samples'])
    t_shapes = [tuple(t.shape[-2:]) for t in model.teacher_recorder.get('fpn')]
    s_shapes = [tuple(t.shape[-2:]) for t in model.student_recorder.get('fpn')]
    assert t_shapes == s_shapes == [(12, 12), (6, 6), (3, 3)]


def test_other_normalisation_with_student_batch_augments_is_a_build_error(tmp_path):
    """RTMDet teacher (mean/std) -> YOLOX student with BatchSyncRandomResize (no
    normalisation): the teacher cannot be given the student's resized batch, so
    building must fail and say so."""
    teacher = _model_cfg('rtmdet', 'teacher')
    with pytest.raises(ValueError, match='batch_augments'):
        MODELS.build(
            dict(
                type='Distiller',
                student=_yolox_with_batch_resize(96),
                teacher=teacher,
                teacher_ckpt=save_weights(teacher, str(tmp_path / 't.pth')),
                recorders=dict(fpn=dict(source='neck')),
                distill_losses=dict(loss_pkd=dict(type='PKDLoss', adapter='auto')),
                probe_size=64))


class _Loader:
    """The parts of a train dataloader YOLOXModeSwitchHook touches."""

    def __init__(self):
        self.persistent_workers = False
        self.dataset = SimpleNamespace(skip=None)
        self.dataset.update_skip_type_keys = lambda keys: setattr(self.dataset, 'skip', keys)


def _runner(model, epoch: int):
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        iter=0,
        max_epochs=10,
        train_dataloader=_Loader(),
        logger=SimpleNamespace(info=lambda *a, **k: None))


def test_yolox_mode_switch_hook_needs_the_student_hook_adapter(tmp_path):
    """mmdet's YOLOXModeSwitchHook sets model.bbox_head.use_l1: an AttributeError on a
    Distiller. Wrapped in StudentHook it switches the student's head (at epoch
    max_epochs - num_last_epochs - 1 = 6, not before) and the pipeline, and keeps its
    priority."""
    model = _distiller('yolox', tmp_path, dict(loss_pkd=dict(type='PKDLoss', adapter='auto')))
    plain = HOOKS.build(dict(type='YOLOXModeSwitchHook', num_last_epochs=3))
    with pytest.raises(AttributeError, match='bbox_head'):
        plain.before_train_epoch(_runner(model, epoch=6))
    hook = HOOKS.build(
        dict(
            type='StudentHook',
            hook=dict(type='YOLOXModeSwitchHook', num_last_epochs=3, priority=48)))
    assert isinstance(hook, StudentHook) and hook.priority == 48
    assert 'before_train_epoch' in hook.get_triggered_stages()
    runner = _runner(model, epoch=5)
    hook.before_train_epoch(runner)
    assert model.student.bbox_head.use_l1 is False and runner.train_dataloader.dataset.skip is None
    runner.epoch = 6
    hook.before_train_epoch(runner)
    assert model.student.bbox_head.use_l1 is True
    assert runner.train_dataloader.dataset.skip == ('Mosaic', 'RandomAffine', 'MixUp')
    assert model.teacher.bbox_head.use_l1 is False


def test_student_hook_passes_a_plain_detector_through(tmp_path):
    """The same wrapped hook on a plain detector (teacher/baseline runs of the config)."""
    detector = MODELS.build(_model_cfg('yolox', 'student'))
    hook = StudentHook(dict(type='YOLOXModeSwitchHook', num_last_epochs=3))
    hook.before_train_epoch(_runner(detector, epoch=7))
    assert detector.bbox_head.use_l1 is True
    with pytest.raises(TypeError, match='Hook'):
        StudentHook(3)


def test_ema_hook_averages_the_distiller_without_its_teacher(tmp_path):
    """EMAHook (ExpMomentumEMA, as the RTMDet / YOLOX configs) on the Distiller: the
    averaged state holds student. and distill_losses. keys, no teacher; one update
    moves a parameter by the ExpMomentumEMA momentum (1 - m) exp(-(1 + step) / gamma) + m."""
    model = _distiller('rtmdet', tmp_path, dict(loss_pkd=dict(type='PKDLoss', adapter='auto')))
    hook = HOOKS.build(
        dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True))
    runner = _runner(model, epoch=0)
    hook.before_run(runner)
    keys = list(hook.ema_model.module.state_dict())
    assert any(k.startswith('student.') for k in keys)
    assert any(k.startswith('distill_losses.loss_pkd.adapters') for k in keys)
    assert not any(k.startswith('teacher') for k in keys)
    hook.after_train_iter(runner, batch_idx=0)  # step 0: a copy
    param = model.student.neck.out_convs[0].conv.weight
    old = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    runner.iter = 1
    hook.after_train_iter(runner, batch_idx=1)
    m = (1 - 0.0002) * math.exp(-2 / 2000) + 0.0002
    ema = hook.ema_model.module.student.neck.out_convs[0].conv.weight
    torch.testing.assert_close(ema, old * (1 - m) + (old + 1.0) * m)


def test_recorder_on_a_syncbn_module_survives_the_runner_revert(tmp_path):
    """mmdet's RTMDet configs use SyncBN. A record of a BN layer itself
    (neck.out_convs.0.bn) must still be captured after the runner reverts SyncBN."""
    from mmengine.model import revert_sync_batchnorm
    student = _model_cfg('rtmdet', 'student')
    student.neck.norm_cfg = dict(type='SyncBN')
    model = _distiller(
        'rtmdet',
        tmp_path,
        dict(loss_pkd=dict(type='PKDLoss', adapter='auto')),
        recorders=dict(fpn=dict(source='neck.out_convs.0.bn')),
        student=student)
    model = revert_sync_batchnorm(model)
    data = _batch(model)
    model.record_step(data['inputs'], data['data_samples'])
    assert len(model.student_recorder.get('fpn')) == 1
