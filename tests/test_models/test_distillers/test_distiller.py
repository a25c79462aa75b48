"""Distiller core: teacher handling, recorders, losses wiring, errors, export."""
import copy

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from mmkd_det.apis import student_checkpoint
from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, tiny_model_cfg


def batch(num_items=(3, 0), size=64, seed=0):
    torch.manual_seed(seed)
    return demo_mm_inputs(
        batch_size=len(num_items),
        image_shapes=[(3, size, size)] * len(num_items),
        num_items=list(num_items),
        num_classes=3)


@pytest.fixture
def retina(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    return MODELS.build(frs_distiller_cfg('retina', ckpt)), ckpt


def test_teacher_is_loaded_frozen_and_outside_the_module_tree(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    # unfused, so the teacher's state dict is the checkpoint's
    distiller = MODELS.build(frs_distiller_cfg('retina', ckpt, fuse_teacher_bn=False))
    saved = torch.load(ckpt)['state_dict']
    for k, v in distiller.teacher.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert all(not p.requires_grad for p in distiller.teacher.parameters())
    assert not distiller.teacher.training
    keys = distiller.state_dict().keys()
    assert not any(k.startswith('teacher') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    assert any(k.startswith('distill_losses.loss_frs_fpn.adapters') for k in keys)
    own = {id(p) for p in distiller.parameters()}
    assert not any(id(p) in own for p in distiller.teacher.parameters())
    distiller.train()
    assert not distiller.teacher.training


def test_training_steps_change_student_not_teacher(retina):
    distiller, _ = retina
    teacher_before = copy.deepcopy(distiller.teacher.state_dict())
    student_before = copy.deepcopy(distiller.student.state_dict())
    distiller.init_weights()  # the runner calls this: must not touch the teacher
    for k, v in distiller.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f'teacher re-initialised: {k}'
    optim = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=0.01, momentum=0.9))
    distiller.train()
    for i in range(2):
        log = distiller.train_step(batch(seed=i), optim)
        assert 'distill.loss_frs_fpn' in log and 'distill.loss_frs_cls' in log
        assert 'loss_cls' in log
    for k, v in distiller.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f'teacher changed: {k}'
    changed = [
        k for k, v in distiller.student.state_dict().items()
        if v.dtype.is_floating_point and not torch.equal(v, student_before[k])
    ]
    assert changed


def test_losses_equal_direct_computation(retina):
    """The Distiller feeds the FRS losses exactly the neck/head tensors of both models."""
    distiller, _ = retina
    distiller.eval()  # fixed BN so the direct recomputation is identical
    data = distiller.data_preprocessor(batch(), True)
    losses = distiller(**data, mode='loss')
    x = data['inputs']
    with torch.no_grad():
        s_feats = distiller.student.extract_feat(x)
        s_cls = distiller.student.bbox_head(s_feats)[0]
        t_feats = distiller.teacher.extract_feat(x)
        t_cls = distiller.teacher.bbox_head(t_feats)[0]
        fpn = distiller.distill_losses['loss_frs_fpn'](s_feats, t_feats, t_cls)
        cls = distiller.distill_losses['loss_frs_cls'](s_cls, t_cls)
    assert losses['distill.loss_frs_fpn'].item() == pytest.approx(fpn.item(), rel=1e-5)
    assert losses['distill.loss_frs_cls'].item() == pytest.approx(cls.item(), rel=1e-5)


def test_warmup_and_stop_epoch(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(frs_distiller_cfg('retina', ckpt, warmup_iters=10, stop_epoch=2))
    d.set_progress(iter=4, epoch=0)
    assert d.distill_scale() == pytest.approx(0.5)
    d.set_progress(iter=50, epoch=0)
    assert d.distill_scale() == 1.0
    d.set_progress(iter=50, epoch=2)
    losses = d(**d.data_preprocessor(batch(), True), mode='loss')
    assert 'distill.loss_frs_fpn' not in losses
    assert losses['distill.loss_stopped'].item() == 0.0
    losses['distill.loss_stopped'].backward()  # every adapter gets a (zero) gradient
    assert all(p.grad is not None for p in d.distill_losses.parameters())


@pytest.mark.parametrize('kind', ['gfl', 'fcos', 'faster', 'atss'])
def test_other_detectors_build_and_compute(kind, weights):
    ckpt = weights(tiny_model_cfg(kind, 16))
    d = MODELS.build(frs_distiller_cfg(kind, ckpt))
    assert d.teacher_heads == (['rpn_head'] if kind == 'faster' else ['bbox_head'])
    losses = d(**d.data_preprocessor(batch(), True), mode='loss')
    assert losses['distill.loss_frs_fpn'].item() > 0
    assert losses['distill.loss_frs_cls'].item() > 0
    total = sum(v for k, v in losses.items() if 'loss' in k and isinstance(v, torch.Tensor))
    total.backward()


def test_image_without_gt_boxes_trains(retina):
    distiller, _ = retina
    optim = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=0.01))
    log = distiller.train_step(batch(num_items=(0, 0)), optim)
    assert all(torch.isfinite(v) for v in log.values())


def test_teacher_only_runs_what_losses_need(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['recorders'] = dict(fpn=dict(source='neck'))
    cfg['distill_losses'] = dict(
        loss_fit=dict(type='FRSFeatureLoss',
                      inputs=dict(t_logits='teacher.fpn')))  # any tensor list
    d = MODELS.build(cfg)
    assert d.teacher_heads == []
    calls = []
    d.teacher.bbox_head.register_forward_hook(lambda *a: calls.append(1))
    d.teacher.register_forward_hook(lambda *a: calls.append('full'))
    d(**d.data_preprocessor(batch(), True), mode='loss')
    assert calls == []  # neither the head nor the teacher's own forward/loss ran


def test_predict_and_export_match_plain_mmdet(retina, tmp_path):
    distiller, _ = retina
    distiller.eval()
    data = batch(num_items=(2, 1))
    with torch.no_grad():
        ours = distiller.val_step(data)
    ckpt = dict(meta=dict(epoch=1), state_dict=distiller.state_dict())
    exported = student_checkpoint(ckpt)
    assert not any(k.startswith(('teacher', 'distill', 'student.')) for k in exported['state_dict'])
    plain = MODELS.build(tiny_model_cfg('retina', 8))
    plain.load_state_dict(exported['state_dict'], strict=True)
    plain.eval()
    with torch.no_grad():
        theirs = plain.val_step(data)
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)


def test_teacher_with_other_preprocessing_gets_its_own_inputs(weights):
    t_cfg = tiny_model_cfg('retina', 16)
    t_cfg['data_preprocessor'].update(bgr_to_rgb=False, mean=[100., 100., 100.])
    ckpt = weights(t_cfg)
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['teacher'] = t_cfg
    d = MODELS.build(cfg)
    data = d.data_preprocessor(batch(), True)
    assert 'teacher_inputs' in data
    assert not torch.equal(data['teacher_inputs'], data['inputs'])
    same = MODELS.build(frs_distiller_cfg('retina', weights(tiny_model_cfg('retina', 16), 'b.pth')))
    assert 'teacher_inputs' not in same.data_preprocessor(batch(), True)


# ----------------------------------------------------------------- bad inputs
def test_missing_teacher_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='Train the teacher first'):
        MODELS.build(frs_distiller_cfg('retina', str(tmp_path / 'nope.pth')))
    with pytest.raises(ValueError, match='needs teacher_ckpt'):
        MODELS.build(frs_distiller_cfg('retina', None))


def test_mismatched_teacher_checkpoint(weights):
    ckpt = weights(tiny_model_cfg('retina', 16, num_classes=5))
    with pytest.raises(RuntimeError, match='does not match the teacher config'):
        MODELS.build(frs_distiller_cfg('retina', ckpt))
    partial = weights(tiny_model_cfg('retina', 16), 'partial.pth')
    sd = torch.load(partial)
    sd['state_dict'] = {k: v for k, v in sd['state_dict'].items() if 'neck' not in k}
    torch.save(sd, partial)
    with pytest.raises(RuntimeError, match='missing keys'):
        MODELS.build(frs_distiller_cfg('retina', partial))
    MODELS.build(frs_distiller_cfg('retina', partial, teacher_strict=False))


def test_teacher_student_num_classes_mismatch(weights):
    ckpt = weights(tiny_model_cfg('retina', 16, num_classes=5))
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['teacher'] = tiny_model_cfg('retina', 16, num_classes=5)
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(cfg)


def test_unknown_recorded_module_suggests_names(weights):
    cfg = frs_distiller_cfg('retina', weights(tiny_model_cfg('retina', 16)))
    cfg['recorders']['cls'] = dict(source='bbox_head.retina_clss')
    with pytest.raises(KeyError, match='retina_cls'):
        MODELS.build(cfg)


def test_channel_mismatch_without_adapter(weights):
    cfg = frs_distiller_cfg('retina', weights(tiny_model_cfg('retina', 16)))
    cfg['distill_losses']['loss_frs_fpn']['adapter'] = None
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        MODELS.build(cfg)


def test_bad_loss_config_keys(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['distill_losses'] = dict(frs_fpn=dict(type='FRSFeatureLoss'))
    with pytest.raises(KeyError, match='must contain "loss"'):
        MODELS.build(cfg)
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['distill_losses']['loss_frs_fpn']['inputs'] = dict(s_feats='student.nothing')
    with pytest.raises(KeyError, match='Add the record'):
        MODELS.build(cfg)
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['distill_losses']['loss_frs_fpn']['inputs'] = dict(s_feat='student.fpn')
    with pytest.raises(KeyError, match='does not take'):
        MODELS.build(cfg)


def test_nan_distillation_loss_is_an_error(weights, tmp_path):
    t_cfg = tiny_model_cfg('retina', 16)
    ckpt = weights(t_cfg)
    sd = torch.load(ckpt)
    key = next(k for k in sd['state_dict'] if k.startswith('neck.fpn_convs.0') and 'weight' in k)
    sd['state_dict'][key] = torch.full_like(sd['state_dict'][key], float('nan'))
    torch.save(sd, ckpt)
    d = MODELS.build(frs_distiller_cfg('retina', ckpt))
    with pytest.raises(FloatingPointError, match='loss_frs_fpn'):
        d(**d.data_preprocessor(batch(), True), mode='loss')


def test_detection_aware_loss_receives_gt_metas_strides_and_models(weights):
    """A loss names what it needs in its forward; the Distiller provides it."""
    from mmkd_det.models.losses import BaseDistillLoss
    from mmkd_det.registry import MODELS as REG
    seen = {}

    @REG.register_module(force=True)
    class _ProbeLoss(BaseDistillLoss):
        default_inputs = dict(s_feats='student.fpn')

        def forward(self, s_feats, gt_instances, batch_img_metas, strides, student, teacher):
            seen.update(
                gt=gt_instances,
                metas=batch_img_metas,
                strides=strides,
                student=student,
                teacher=teacher,
                levels=len(s_feats))
            return s_feats[0].sum() * 0

    ckpt = weights(tiny_model_cfg('retina', 16))
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg['distill_losses'] = dict(loss_probe=dict(type='_ProbeLoss'))
    d = MODELS.build(cfg)
    data = d.data_preprocessor(batch(num_items=(3, 1)), True)
    d(**data, mode='loss')
    assert [len(g) for g in seen['gt']] == [3, 1]
    assert seen['metas'][0]['batch_input_shape'] == (64, 64)
    assert seen['strides'] == [8, 16, 32, 64, 128] and seen['levels'] == 5
    assert seen['student'] is d.student and seen['teacher'] is d.teacher


def test_unreachable_teacher_url_names_the_fix(tmp_path, monkeypatch):
    # a refused loopback connection stands for "no network" (no traffic leaves the machine)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = 'http://127.0.0.1:9/retinanet_r101_fpn_2x_coco.pth'
    with pytest.raises(RuntimeError, match='Could not download teacher_ckpt.*local file'):
        MODELS.build(frs_distiller_cfg('retina', url))


def test_inherit_from_teacher_copies_neck_and_head_and_survives_init_weights(weights, frs_cfg):
    """FGD/MGD's inheriting strategy: student neck + head start as the teacher's (same
    widths); the backbone does not; the runner's init_weights does not undo it."""
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(
        frs_cfg('retina', ckpt, t_width=16, s_width=16, inherit_from_teacher=('neck', 'bbox_head')))
    d.init_weights()
    for prefix in ('neck', 'bbox_head'):
        s_state = getattr(d.student, prefix).state_dict()
        for k, v in getattr(d.teacher, prefix).state_dict().items():
            assert torch.equal(s_state[k], v), f'{prefix}.{k}'
    assert not torch.equal(d.student.backbone.conv1.weight, d.teacher.backbone.conv1.weight)
    off = MODELS.build(frs_cfg('retina', ckpt, t_width=16, s_width=16))
    assert not torch.equal(off.student.neck.fpn_convs[0].conv.weight,
                           off.teacher.neck.fpn_convs[0].conv.weight)


def test_inherit_from_teacher_errors(weights, frs_cfg):
    ckpt = weights(tiny_model_cfg('retina', 16))
    with pytest.raises(ValueError, match='cannot take the teacher.s weights'):
        MODELS.build(
            frs_cfg('retina', ckpt, t_width=16, s_width=8, inherit_from_teacher=('neck', )))
    with pytest.raises(KeyError, match='not a sub-module of both'):
        MODELS.build(
            frs_cfg('retina', ckpt, t_width=16, s_width=16, inherit_from_teacher=('roi_head', )))


def test_distill_to_task_ratio_is_logged_and_warned_once(weights, frs_cfg, monkeypatch):
    """distill_ratio = distillation / task loss (hand sum of the logged terms); a ratio
    off by more than 100x either way is a warning naming the losses, once."""
    from mmkd_det.engine.hooks import distill_diagnostics_hook as mod
    calls = []
    monkeypatch.setattr(mod, 'print_log', lambda msg, **kw: calls.append(msg))
    ckpt = weights(tiny_model_cfg('retina', 16))
    for weight, words in ((1e6, 'swamp'), (1e-9, 'almost nothing')):
        cfg = frs_cfg('retina', ckpt)
        cfg['distill_losses'] = dict(loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=weight))
        d = MODELS.build(cfg)
        d.train()
        calls.clear()
        runner = _HookRunner(d)
        for i in range(2):
            losses = d(**d.data_preprocessor(batch(seed=i), True), mode='loss')
            runner.step(i, losses)
        task = sum(v.sum() if not isinstance(v, list) else sum(x.sum() for x in v)
                   for k, v in losses.items() if 'loss' in k and not k.startswith('distill'))
        expected = losses['distill.loss_frs_fpn'].item() / task.item()
        assert runner.logged('distill_ratio') == pytest.approx(expected, rel=1e-5)
        assert len(calls) == 1 and words in calls[0] and 'loss_frs_fpn' in calls[0]
    d = MODELS.build(frs_cfg('retina', ckpt))  # the shipped weights: no warning
    calls.clear()
    _HookRunner(d).step(0, d(**d.data_preprocessor(batch(), True), mode='loss'))
    assert not calls


class _HookRunner:
    """What the runner does with one step's losses: parse them, put them in the
    message hub (RuntimeInfoHook), then run DistillDiagnosticsHook."""

    def __init__(self, model):
        from mmengine.hooks import RuntimeInfoHook

        from mmkd_det.engine.hooks import DistillDiagnosticsHook
        self.model, self.iter = model, 0
        self.message_hub = MessageHub.get_instance(f'diagnostics_{id(self)}')
        self.hooks = [RuntimeInfoHook(), DistillDiagnosticsHook()]

    def step(self, i, losses):
        self.iter = i
        _, log_vars = self.model.parse_losses(losses)
        for hook in self.hooks:
            hook.after_train_iter(self, i, None, log_vars)

    def logged(self, key):
        return self.message_hub.get_scalar(f'train/{key}').current()


def trained_bn_teacher(path, seed=1):
    """A tiny RetinaNet teacher whose BN layers have non-trivial statistics and
    affine weights (a fresh model's would make folding an identity)."""
    torch.manual_seed(seed)
    model = MODELS.build(tiny_model_cfg('retina', 16))
    model.init_weights()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return path


def test_fused_teacher_bn_gives_the_unfused_features_and_losses(tmp_path):
    ckpt = trained_bn_teacher(str(tmp_path / 't.pth'))
    fused = MODELS.build(frs_distiller_cfg('retina', ckpt))
    plain = MODELS.build(frs_distiller_cfg('retina', ckpt, fuse_teacher_bn=False))
    plain.student.load_state_dict(fused.student.state_dict())
    plain.distill_losses.load_state_dict(fused.distill_losses.state_dict())
    bns = [n for n, m in fused.teacher.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not bns and any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.teacher.modules())
    assert all(not p.requires_grad for p in fused.teacher.parameters())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(fused.teacher.extract_feat(x), plain.teacher.extract_feat(x)):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())
    fused.eval()
    plain.eval()
    data = fused.data_preprocessor(batch(), True)
    lf, lp = fused(**data, mode='loss'), plain(**data, mode='loss')
    for k in ('distill.loss_frs_fpn', 'distill.loss_frs_cls'):
        assert lf[k].item() == pytest.approx(lp[k].item(), rel=1e-4), k


def test_recorded_convolution_keeps_its_batchnorm_unfolded(tmp_path):
    """A record on a convolution followed by a BN (the stem conv1 -> bn1) stays the conv's
    own output: that BN is not folded into it, every other one is."""
    ckpt = trained_bn_teacher(str(tmp_path / 't.pth'))
    cfg = frs_distiller_cfg('retina', ckpt)
    cfg.update(recorders=dict(stem=dict(source='backbone.conv1')),
               distill_losses=dict(loss_fit=dict(type='FitNetLoss', inputs=dict(
                   s_feats='student.stem', t_feats='teacher.stem'))))
    d = MODELS.build(cfg)
    plain = MODELS.build(dict(cfg, fuse_teacher_bn=False))
    assert isinstance(d.teacher.backbone.bn1, torch.nn.BatchNorm2d)        # kept
    assert isinstance(d.teacher.backbone.layer1[0].bn1, torch.nn.Identity)  # folded
    x = torch.randn(1, 3, 64, 64)
    d._teacher_forward(x)
    plain._teacher_forward(x)
    torch.testing.assert_close(d.teacher_recorder.get('stem')[0],
                               plain.teacher_recorder.get('stem')[0])
    d.reset_records()
    plain.reset_records()


def test_teacher_bn_fusion_that_changes_features_is_undone(tmp_path, monkeypatch):
    from mmkd_det.models.distillers import teacher as mod
    calls = []
    monkeypatch.setattr(mod, 'print_log', lambda msg, **kw: calls.append(msg))

    fuse = mod._fuse_conv_bn_except

    def broken_fuse(module, keep):  # folds, then corrupts the folded weights
        fuse(module, keep)
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.data.mul_(1.5)

    monkeypatch.setattr(mod, '_fuse_conv_bn_except', broken_fuse)
    ckpt = trained_bn_teacher(str(tmp_path / 't.pth'))
    d = MODELS.build(frs_distiller_cfg('retina', ckpt))
    assert len(calls) == 1 and 'kept the unfused teacher' in calls[0]
    saved = torch.load(ckpt)['state_dict']
    for k, v in d.teacher.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert all(not p.requires_grad for p in d.teacher.parameters())


@pytest.mark.parametrize('option', [None, True, False])
def test_teacher_channels_last_same_records_in_nchw(option, weights):
    """The teacher runs channels-last when asked (None = on CPU), the losses get
    contiguous NCHW records of the same values, and the losses are unchanged."""
    ckpt = weights(tiny_model_cfg('retina', 16))
    ref = MODELS.build(frs_distiller_cfg('retina', ckpt, teacher_channels_last=False))
    d = MODELS.build(frs_distiller_cfg('retina', ckpt, teacher_channels_last=option))
    d.load_state_dict(ref.state_dict())
    seen = []
    first_conv = next(m for m in d.teacher.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    handle = first_conv.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.randn(2, 3, 64, 64)
    d._teacher_forward(x)
    ref._teacher_forward(x)
    handle.remove()
    assert seen == [option is not False]
    for name in d.teacher_recorder.specs:
        got, want = d.teacher_recorder.get(name), ref.teacher_recorder.get(name)
        assert len(got) == len(want) > 0
        for a, b in zip(got, want):
            assert a.is_contiguous() and a.shape == b.shape
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())
    d.eval()
    ref.eval()
    data = d.data_preprocessor(batch(), True)
    got, want = d(**data, mode='loss'), ref(**data, mode='loss')
    for k in ('distill.loss_frs_fpn', 'distill.loss_frs_cls'):
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-4), k


def test_teacher_channels_last_bad_value(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    with pytest.raises(TypeError, match='teacher_channels_last must be None'):
        MODELS.build(frs_distiller_cfg('retina', ckpt, teacher_channels_last='yes'))


def _inplace_modules(model) -> int:
    return sum(getattr(m, 'inplace', False) is True for m in model.modules())


def test_inplace_activations_kept_when_no_record_is_overwritten(weights):
    """'auto' keeps both detectors' inplace ReLUs for neck + head records; the
    losses and the student's gradients equal those with every one disabled."""
    ckpt = weights(tiny_model_cfg('retina', 16))
    ref = MODELS.build(frs_distiller_cfg('retina', ckpt, inplace_activations='disable'))
    d = MODELS.build(frs_distiller_cfg('retina', ckpt))
    d.load_state_dict(ref.state_dict())
    assert _inplace_modules(ref.student) == _inplace_modules(ref.teacher) == 0
    assert _inplace_modules(d.student) > 0 and _inplace_modules(d.teacher) > 0
    data = d.data_preprocessor(batch(), True)
    grads = []
    for model in (d, ref):
        model.train()
        losses = model(**data, mode='loss')
        total, _ = model.parse_losses(losses)
        model.zero_grad()
        total.backward()
        grads.append({
            n: p.grad.clone()
            for n, p in model.student.named_parameters() if p.grad is not None
        })
        grads[-1]['losses'] = torch.stack(
            [losses[k] for k in ('distill.loss_frs_fpn', 'distill.loss_frs_cls')])
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:  # float rounding (different kernels' summation orders)
        a, b = grads[0][k], grads[1][k]
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item()), k


def _bn_record_cfg(ckpt, source, **overrides):
    """FitNet on the output of ``source`` in both ResNet-18s (an inplace ReLU
    or a residual ``+=`` follows it)."""
    cfg = frs_distiller_cfg('retina', ckpt, **overrides)
    cfg['recorders'] = dict(bn=dict(source=source))
    cfg['distill_losses'] = dict(
        loss_fitnet=dict(
            type='FitNetLoss', inputs=dict(s_feats='student.bn', t_feats='teacher.bn')))
    return cfg


def test_inplace_activation_after_a_record_is_disabled_or_refused(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    # bn1's output goes through the block's inplace ReLU: 'auto' disables them
    d = MODELS.build(_bn_record_cfg(ckpt, 'backbone.layer1.0.bn1'))
    assert _inplace_modules(d.student) == _inplace_modules(d.teacher) == 0
    d.train()
    x = torch.randn(2, 3, 64, 64)
    d._teacher_forward(x)
    rec = d.teacher_recorder.get('bn')[0]
    assert (rec < 0).any()  # the pre-ReLU values, not overwritten
    block = d.teacher.backbone.layer1[0]
    stem = d.teacher.backbone
    with torch.no_grad():
        want = block.bn1(block.conv1(stem.maxpool(stem.relu(stem.bn1(stem.conv1(x))))))
    assert torch.allclose(rec, want, atol=1e-5)
    with pytest.raises(
            ValueError, match=r"Records \['bn'\] of the student.*'auto' or "
            r"'disable'"):
        MODELS.build(_bn_record_cfg(ckpt, 'backbone.layer1.0.bn1', inplace_activations='keep'))
    # bn2's output takes the residual `out += identity`: no setting can keep it
    with pytest.raises(ValueError, match=r'residual `\+=`.*record another module'):
        MODELS.build(_bn_record_cfg(ckpt, 'backbone.layer1.0.bn2'))
    with pytest.raises(ValueError, match='inplace_activations must be one of'):
        MODELS.build(frs_distiller_cfg('retina', ckpt, inplace_activations='off'))
