"""Loss calibration: each distillation loss scaled once to a share of the task gradient.

The expected factors come from an independent path: a Distiller without calibration
(same weights) gives the raw terms and task losses of the batch, and the gradient norms
are taken here with torch.autograd.grad on the parameters each loss reaches.
"""
import math

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import load_state_dict

from mmkd_det.models.distillers import LossCalibration, build_calibration
from mmkd_det.models.distillers import calibration as calibration_mod
from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, tiny_model_cfg

NAMES = ('loss_frs_fpn', 'loss_frs_cls')
SHARE = 0.5


def batch(seed=0):
    """Two 64 x 64 images (random pixels from ``seed``; demo_mm_inputs' own are fixed)."""
    data = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 1], num_classes=3)
    g = torch.Generator().manual_seed(seed)
    data['inputs'] = [
        torch.randint(0, 256, (3, 64, 64), generator=g).to(torch.uint8) for _ in range(2)
    ]
    return data


@pytest.fixture
def ckpt(weights):
    return weights(tiny_model_cfg('retina', 16))


def build(ckpt, calibration=None, **overrides):
    return MODELS.build(frs_distiller_cfg('retina', ckpt, loss_calibration=calibration,
                                          **overrides))


def pair(ckpt, **calibration):
    """A plain Distiller and a calibrating one with the same student and adapters."""
    ref = build(ckpt)
    d = build(ckpt, calibration)
    d.load_state_dict(ref.state_dict(), strict=False)  # no calibration keys in ref
    ref.train()
    d.train()
    return ref, d


def step(model, data, iter):
    model.set_progress(iter)
    return model(**model.data_preprocessor(data, True), mode='loss')


def task_total(losses):
    """The student's loss by hand: every non-distillation key with 'loss'."""
    total = 0
    for k, v in losses.items():
        if 'loss' in k and not k.startswith('distill'):
            total = total + (sum(x.mean() for x in v) if isinstance(v, list) else v.mean())
    return total


def grads(value, model):
    """{student parameter name: gradient or None}."""
    named = [(n, p) for n, p in model.student.named_parameters() if p.requires_grad]
    got = torch.autograd.grad(value, [p for _, p in named], retain_graph=True, allow_unused=True)
    return {n: g for (n, _), g in zip(named, got)}


def norm(gs, names):
    return math.sqrt(sum(float((gs[n].double()**2).sum()) for n in names if gs[n] is not None))


def reference_norms(ref, data):
    """{loss: (g_k, g_task on the parameters loss k reaches)} on ``data``, and the reached
    names (float64 sums over every element)."""
    losses = step(ref, data, 0)
    task = grads(task_total(losses), ref)
    out, reached = {}, {}
    for name in NAMES:
        g = grads(losses[f'distill.{name}'], ref)
        reached[name] = [n for n, v in g.items() if v is not None]
        out[name] = (norm(g, reached[name]), norm(task, reached[name]))
    return out, reached, losses


# ---------------------------------------------------------------- the factors
@pytest.mark.parametrize('window', [1, 2])
def test_factor_is_share_times_task_over_loss_gradient_norm(ckpt, window, monkeypatch):
    logs = []
    monkeypatch.setattr(calibration_mod, 'print_log', lambda msg, **kw: logs.append(msg))
    ref, d = pair(ckpt, share=SHARE, window=window, at_iter=window)
    datas = [batch(seed=i) for i in range(window)]
    rows = [reference_norms(ref, x) for x in datas]
    reached = rows[0][1]
    # the FPN loss reaches backbone + neck, not the head: the subset matters
    assert not any(n.startswith('bbox_head') for n in reached['loss_frs_fpn'])
    assert any(n.startswith('bbox_head.retina_cls') for n in reached['loss_frs_cls'])
    for i, x in enumerate(datas):  # the window: iterations [0, window)
        losses = step(d, x, i)
        assert all(losses[f'distill.{n}'].item() == 0.0 for n in NAMES)
        assert d.calibration_factors_dict() == dict.fromkeys(NAMES)
    step(d, datas[0], window)  # fixed here
    got = d.calibration_factors_dict()
    for name in NAMES:
        g_k = sum(r[0][name][0] for r in rows) / window
        g_task = sum(r[0][name][1] for r in rows) / window
        assert got[name] == pytest.approx(SHARE * g_task / g_k, rel=1e-5), name
    fixed = [m for m in logs if 'fixed' in m]  # (the other: the load without factors)
    assert len(fixed) == 1 and f'at iteration {window}' in fixed[0]
    for name, weight in zip(NAMES, (0.005, 0.02)):
        assert f'{name}: factor {got[name]:.6g}' in fixed[0]
        assert f'loss_weight {weight}' in fixed[0]
        g_k, g_task = (sum(r[0][name][j] for r in rows) / window for j in (0, 1))
        assert f'mean grad norm {g_k:.4g}, task {g_task:.4g}' in fixed[0]


def test_max_factor_caps_each_factor_and_logs_the_uncapped_one(ckpt, monkeypatch):
    """c_k = min(share * g_task / g_k, max_factor): the cap set between the two
    uncapped factors bounds the larger one only, and the log gives its raw value."""
    logs = []
    monkeypatch.setattr(calibration_mod, 'print_log', lambda msg, **kw: logs.append(msg))
    torch.manual_seed(0)  # the same adapters in both builds
    ref, _ = pair(ckpt, share=SHARE, window=1, at_iter=1)
    data = batch()
    norms = reference_norms(ref, data)[0]
    raw = {n: SHARE * norms[n][1] / norms[n][0] for n in NAMES}
    lo, hi = sorted(raw.values())
    assert hi > 1.5 * lo  # the two units' factors differ enough to cap one
    cap = math.sqrt(lo * hi)
    torch.manual_seed(0)
    _, d = pair(ckpt, share=SHARE, window=1, at_iter=1, max_factor=cap)
    step(d, data, 0)
    step(d, data, 1)
    got = d.calibration_factors_dict()
    fixed = [m for m in logs if 'fixed' in m]
    for name in NAMES:
        assert got[name] == pytest.approx(min(raw[name], cap), rel=1e-5), name
        capped = raw[name] > cap
        assert (f'{name}: factor {got[name]:.6g}' in fixed[0])
        assert ('capped from' in fixed[0].split(f'{name}: factor')[1].split(';')[0]) == capped
    assert f'capped from {hi:.6g} by max_factor' in fixed[0]


def test_calibrated_gradient_share_on_the_same_batch(ckpt):
    """Window 1 on one batch, then the same batch again (no optimizer step):
    ||grad(c_k L_k)|| / ||grad(L_task)|| = share on the parameters L_k reaches."""
    _, d = pair(ckpt, share=SHARE, window=1, at_iter=1)
    data = batch()
    step(d, data, 0)
    losses = step(d, data, 1)
    factors = d.calibration_factors_dict()
    task = grads(task_total(losses), d)
    for name in NAMES:
        assert losses[f'distill_factor.{name[5:]}'].item() == pytest.approx(factors[name])
        g = grads(losses[f'distill.{name}'], d)
        reached = [n for n, v in g.items() if v is not None]
        assert norm(g, reached) / norm(task, reached) == pytest.approx(SHARE, rel=1e-5), name


def test_factor_times_schedule_when_fixed_during_warmup(ckpt):
    """at_iter < warmup_iters: the ramp continues on top of the fixed factors."""
    ref, d = pair(ckpt, share=SHARE, window=1, at_iter=1)
    d.schedule.warmup_iters = ref.schedule.warmup_iters = 4
    data = batch()
    step(d, data, 0)
    losses = step(d, data, 1)  # scale (1 + 1) / 4
    raw = step(ref, data, 3)  # scale 1
    factors = d.calibration_factors_dict()
    for name in NAMES:
        want = 0.5 * factors[name] * raw[f'distill.{name}'].item()
        assert losses[f'distill.{name}'].item() == pytest.approx(want, rel=1e-5)


def test_sums_are_averaged_over_ranks_before_fixing(ckpt, monkeypatch):
    """The fixed factors use the all-reduced (op='mean') sums, not this rank's."""
    seen = []
    other = torch.tensor([[2.0, 3.0], [4.0, 10.0]])  # (g_k, g_task) per loss, as if averaged

    def fake_all_reduce(data, op):
        seen.append((data.clone(), op))
        data.copy_(other)

    monkeypatch.setattr(calibration_mod, 'all_reduce', fake_all_reduce)
    ref, d = pair(ckpt, share=SHARE, window=1, at_iter=1)
    norms = reference_norms(ref, batch())[0]
    step(d, batch(), 0)
    step(d, batch(), 1)
    (local, op), = seen
    assert op == 'mean'
    want = torch.tensor([norms[n] for n in NAMES])
    assert torch.allclose(local, want.float(), rtol=1e-5)
    assert d.calibration_factors_dict() == pytest.approx(
        dict(loss_frs_fpn=SHARE * 3 / 2, loss_frs_cls=SHARE * 10 / 4), rel=1e-6)


# ------------------------------------------------------ before the factors
def test_no_distillation_gradient_and_no_teacher_before_the_window(ckpt):
    _, d = pair(ckpt, share=SHARE, window=1, at_iter=3)  # window: iteration 2
    calls = []
    d.teacher.backbone.register_forward_hook(lambda *a: calls.append(1))
    for it, teacher_calls in ((0, 0), (1, 0), (2, 1)):
        losses = step(d, batch(), it)
        assert len(calls) == teacher_calls, it
        total, _ = d.parse_losses(losses)
        want, got = grads(task_total(losses), d), grads(total, d)
        assert want.keys() == got.keys()
        for n in want:
            assert (want[n] is None) == (got[n] is None), n
            if want[n] is not None:
                assert torch.allclose(got[n], want[n], rtol=0, atol=1e-7), (it, n)
        if it < 2:  # like a stopped run: only a zero placeholder
            assert not any(f'distill.{n}' in losses for n in NAMES)
            assert losses['distill.loss_stopped'].item() == 0.0
        else:  # measured, applied as 0; the adapters still get (zero) gradients
            assert all(losses[f'distill.{n}'].item() == 0.0 for n in NAMES)
            adapters = list(d.distill_losses.parameters())
            for g in torch.autograd.grad(total, adapters, retain_graph=True, allow_unused=True):
                assert g is not None and not g.any()
    assert d.calibration_factors_dict() == dict.fromkeys(NAMES)
    assert not any(k.startswith('distill_factor') for k in losses)


def test_missing_progress_is_an_error(ckpt):
    d = build(ckpt, dict(share=SHARE, window=1, at_iter=1))
    with pytest.raises(RuntimeError, match='DistillationScheduleHook.*set_progress'):
        d(**d.data_preprocessor(batch(), True), mode='loss')


# ------------------------------------------------------------------- resume
def test_factors_are_in_the_checkpoint_and_resume_does_not_recalibrate(ckpt, monkeypatch):
    cfg = dict(share=SHARE, window=1, at_iter=1)
    ref, d = pair(ckpt, **cfg)
    step(d, batch(), 0)
    step(d, batch(), 1)
    factors = d.calibration_factors_dict()
    state = d.state_dict()
    assert state['loss_calibration.calibrated'].item() == 1
    assert state['loss_calibration.factors'].tolist() == pytest.approx(
        [factors[n] for n in NAMES])
    fresh = build(ckpt, cfg)
    load_state_dict(fresh, state, strict=True)  # mmengine's loader, as resume uses
    assert fresh.calibration_factors_dict() == factors
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, 'grad', lambda *a, **k: calls.append(1) or real(*a, **k))
    fresh.train()
    losses = step(fresh, batch(), 0)  # what would be its window
    assert calls == []
    assert fresh.calibration_factors_dict() == factors
    raw = step(ref, batch(), 0)
    for name in NAMES:
        want = factors[name] * raw[f'distill.{name}'].item()
        assert losses[f'distill.{name}'].item() == pytest.approx(want, rel=1e-5)


def test_checkpoint_without_factors_calibrates(ckpt, monkeypatch):
    """A checkpoint of a run without calibration (or saved before it): a message, then
    the measurement; past at_iter it takes `window` iterations from then on."""
    logs = []
    monkeypatch.setattr(calibration_mod, 'print_log', lambda msg, **kw: logs.append(msg))
    ref = build(ckpt)
    d = build(ckpt, dict(share=SHARE, window=2, at_iter=2))
    load_state_dict(d, ref.state_dict(), strict=False)
    assert len(logs) == 1 and 'no loss_calibration.calibrated' in logs[0]
    assert '[0, 2)' in logs[0]
    d.train()
    before = d.state_dict()  # an uncalibrated checkpoint loads as uncalibrated
    assert before['loss_calibration.calibrated'].item() == 0
    load_state_dict(d, before, strict=True)
    assert d.calibration_factors_dict() == dict.fromkeys(NAMES)
    losses = step(d, batch(), 10)  # resumed past at_iter: measures iterations 10, 11
    assert all(losses[f'distill.{n}'].item() == 0.0 for n in NAMES)
    assert 'measuring over 2 more iteration(s)' in logs[-1]
    step(d, batch(), 11)
    assert d.calibration_factors_dict() == dict.fromkeys(NAMES)
    losses = step(d, batch(), 12)
    assert 'fixed at iteration 12' in logs[-1]
    assert all(losses[f'distill.{n}'].item() > 0 for n in NAMES)


# ---------------------------------------------------------------- the log
def test_logged_factors_are_not_added_to_the_loss(ckpt):
    _, d = pair(ckpt, share=SHARE, window=1, at_iter=1)
    step(d, batch(), 0)
    losses = step(d, batch(), 1)
    keys = [k for k in losses if k.startswith('distill_factor.')]
    assert keys == ['distill_factor.frs_fpn', 'distill_factor.frs_cls']
    assert all(not v.requires_grad for k, v in losses.items() if k in keys)
    total, log_vars = BaseModel.parse_losses(d, losses)
    with_distill = task_total(losses) + sum(losses[f'distill.{n}'] for n in NAMES)
    assert total.item() == pytest.approx(with_distill.item(), rel=1e-6)
    factors = sum(losses[k].item() for k in keys)
    assert abs(total.item() - with_distill.item()) < 1e-3 * factors  # not in it
    assert log_vars['distill_factor.frs_fpn'].item() == pytest.approx(
        d.calibration_factors_dict()['loss_frs_fpn'])


# -------------------------------------------------------------- bad inputs
@pytest.mark.parametrize('cfg, error, words', [
    (dict(share=0, window=1, at_iter=1), ValueError, 'share must be a number > 0'),
    (dict(share=-1.0, window=1, at_iter=1), ValueError, 'share must be a number > 0'),
    (dict(share=float('nan'), window=1, at_iter=1), ValueError, 'share must be'),
    (dict(window=1, at_iter=1), ValueError, 'share must be a number > 0.*got None'),
    (dict(share=1, window=0, at_iter=1), ValueError, 'window must be an integer >= 1'),
    (dict(share=1, window=1.5, at_iter=2), ValueError, 'window must be an integer >= 1'),
    (dict(share=1, window=5, at_iter=3), ValueError, r'at_iter=3.*window=5'),
    (dict(share=1, window=5), ValueError, r'at_iter defaults to .*warmup_iters=2.*window=5'),
    (dict(share=1, shar=1), TypeError, r"'shar' \(did you mean 'share'"),
    ('share=1', TypeError, 'loss_calibration must be None or a dict'),
    (dict(share=1, window=1, at_iter=1, max_factor=0), ValueError, 'max_factor must be None'),
    (dict(share=1, window=1, at_iter=1, max_factor=float('inf')), ValueError,
     r'max_factor must be None \(no bound\) or a number > 0'),
    (dict(share=1, window=1, at_iter=1, max_factor=True), ValueError, 'max_factor must be'),
    (dict(share=1, max_factr=10), TypeError, r"'max_factr' \(did you mean 'max_factor'"),
])
def test_bad_options(cfg, error, words):
    losses = {n: torch.nn.Module() for n in NAMES}
    with pytest.raises(error, match=words):
        build_calibration(cfg, losses, warmup_iters=2)


def test_bad_options_in_the_distiller(ckpt):
    with pytest.raises(ValueError, match=r'at_iter.*warmup_iters=0.*window=20'):
        build(ckpt, dict(share=1.0))
    with pytest.raises(TypeError, match='Valid keys: share, window, at_iter'):
        build(ckpt, dict(share=1.0, windw=2, at_iter=2))
    d = build(ckpt, dict(share=1.0), warmup_iters=20)  # default window 20 at warmup_iters
    assert isinstance(d.loss_calibration, LossCalibration)
    assert (d.loss_calibration.at_iter, d.loss_calibration.window) == (20, 20)
    off = build(ckpt)
    assert off.loss_calibration is None
    assert off.calibration_factors_dict() == dict.fromkeys(NAMES)
    assert not any('calibration' in k for k in off.state_dict())


def _probe_cfg(ckpt, forward):
    from mmkd_det.models.losses import BaseDistillLoss

    @MODELS.register_module(force=True)
    class _CalibProbeLoss(BaseDistillLoss):
        default_inputs = dict(s_feats='student.fpn')

        def forward(self, s_feats):
            return forward(s_feats[0])

    cfg = frs_distiller_cfg('retina', ckpt, loss_calibration=dict(share=1.0, window=1,
                                                                  at_iter=1))
    cfg['distill_losses']['loss_probe'] = dict(type='_CalibProbeLoss')
    d = MODELS.build(cfg)
    d.train()
    return d


def test_non_finite_gradient_norm_names_the_loss(ckpt):
    # value 0 (finite), gradient 0 * inf = NaN
    d = _probe_cfg(ckpt, lambda s: torch.sqrt((s * 0).pow(2).sum()))
    with pytest.raises(FloatingPointError, match=r'iteration 0.*loss_probe \(distillation '
                       r'gradient norm nan\)'):
        step(d, batch(), 0)


def test_zero_gradient_loss_names_the_loss(ckpt):
    d = _probe_cfg(ckpt, lambda s: s.sum() * 0)
    step(d, batch(), 0)
    with pytest.raises(ValueError, match="'loss_probe' cannot be calibrated: its own gradient"):
        step(d, batch(), 1)


def test_losses_giving_the_same_log_key_are_refused():
    losses = {'loss_a': torch.nn.Module(), 'a_loss': torch.nn.Module()}
    with pytest.raises(ValueError, match='same logged factor key.*rename'):
        build_calibration(dict(share=1, window=1, at_iter=1), losses, 0)


# ------------------------------------------------------------- per='term'
def _two_term_loss():
    from mmkd_det.models.losses import BaseDistillLoss

    @MODELS.register_module(force=True)
    class _CalibTwoTermLoss(BaseDistillLoss):
        """Two terms with gradient scales ~1e5 apart on different student
        parameters: the FPN's first level, and the classification logits."""
        default_inputs = dict(s_feats='student.fpn', s_cls='student.cls')

        def forward(self, s_feats, s_cls):
            return dict(
                loss_feat=100.0 * s_feats[0].pow(2).mean(),
                loss_cls=1e-3 * s_cls[0].pow(2).mean())


_two_term_loss()
#: the logged terms, in another order than the losses return them
TERMS = ['loss_frs_fpn', 'loss_two.loss_cls', 'loss_two.loss_feat']


def build_terms(ckpt, calibration=None):
    losses = dict(
        loss_two=dict(type='_CalibTwoTermLoss'),
        loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005))
    return build(ckpt, calibration, distill_losses=losses)


def pair_terms(ckpt, terms=TERMS, **calibration):
    """A plain Distiller and one calibrating per term, same student and adapters."""
    ref = build_terms(ckpt)
    d = build_terms(ckpt, dict(per='term', terms=terms, **calibration))
    d.load_state_dict(ref.state_dict(), strict=False)
    ref.train()
    d.train()
    return ref, d


def reference_term_norms(ref, data):
    """{term: (g_term, g_task on the parameters the term reaches)}, {term: reached names}
    (autograd on each logged term of a Distiller without calibration, scale 1)."""
    losses = step(ref, data, 0)
    task = grads(task_total(losses), ref)
    out, reached = {}, {}
    for term in TERMS:
        g = grads(losses[f'distill.{term}'], ref)
        reached[term] = [n for n, v in g.items() if v is not None]
        out[term] = (norm(g, reached[term]), norm(task, reached[term]))
    return out, reached


@pytest.mark.parametrize('window', [1, 2])
def test_term_factor_is_share_times_task_over_term_gradient_norm(ckpt, window, monkeypatch):
    logs = []
    monkeypatch.setattr(calibration_mod, 'print_log', lambda msg, **kw: logs.append(msg))
    ref, d = pair_terms(ckpt, share=SHARE, window=window, at_iter=window)
    datas = [batch(seed=i) for i in range(window)]
    rows = [reference_term_norms(ref, x) for x in datas]
    reached = rows[0][1]
    # the two terms of one loss act on different parameters (own Theta, own g_task)
    assert any(n.startswith('bbox_head.retina_cls') for n in reached['loss_two.loss_cls'])
    assert not any(n.startswith('bbox_head') for n in reached['loss_two.loss_feat'])
    for i, x in enumerate(datas):
        losses = step(d, x, i)
        assert all(losses[f'distill.{t}'].item() == 0.0 for t in TERMS)
        assert d.calibration_factors_dict() == dict.fromkeys(TERMS)
    step(d, datas[0], window)  # fixed here
    got = d.calibration_factors_dict()
    assert list(got) == TERMS
    want = {}
    for term in TERMS:
        g_k = sum(r[0][term][0] for r in rows) / window
        g_task = sum(r[0][term][1] for r in rows) / window
        want[term] = SHARE * g_task / g_k
        assert got[term] == pytest.approx(want[term], rel=1e-5), term
    # one factor for the loss_two sum could not give both: they are far apart
    assert got['loss_two.loss_cls'] > 100 * got['loss_two.loss_feat']
    fixed = [m for m in logs if 'fixed' in m]
    assert len(fixed) == 1 and '(term) fixed at iteration' in fixed[0]
    assert f'loss_two.loss_cls: factor {got["loss_two.loss_cls"]:.6g}' in fixed[0]
    assert 'loss_weight of loss_two 1.0' in fixed[0]
    assert 'loss_frs_fpn: factor' in fixed[0] and 'loss_weight 0.005' in fixed[0]


def test_term_calibrated_gradient_share_on_the_same_batch(ckpt):
    """Window 1 on one batch, then the same batch again: every term's gradient norm is
    `share` times the task's on the parameters that term reaches; factors are logged
    per term and not added to the loss."""
    _, d = pair_terms(ckpt, share=SHARE, window=1, at_iter=1)
    data = batch()
    step(d, data, 0)
    losses = step(d, data, 1)
    factors = d.calibration_factors_dict()
    task = grads(task_total(losses), d)
    for term in TERMS:
        g = grads(losses[f'distill.{term}'], d)
        reached = [n for n, v in g.items() if v is not None]
        assert norm(g, reached) / norm(task, reached) == pytest.approx(SHARE, rel=1e-5), term
    keys = [k for k in losses if k.startswith('distill_factor.')]
    assert keys == ['distill_factor.frs_fpn', 'distill_factor.two.cls', 'distill_factor.two.feat']
    for key, term in zip(keys, TERMS):
        assert losses[key].item() == pytest.approx(factors[term])
    total, _ = BaseModel.parse_losses(d, losses)
    with_distill = task_total(losses) + sum(losses[f'distill.{t}'] for t in TERMS)
    assert total.item() == pytest.approx(with_distill.item(), rel=1e-6)


def test_term_factors_round_trip_through_the_state_dict(ckpt, monkeypatch):
    """The buffer has one entry per term from the build on, so a resume (fit_checkpoint's
    shape check, then mmengine's strict load) restores the factors without measuring."""
    from mmkd_det.apis import fit_checkpoint

    cfg = dict(share=SHARE, window=1, at_iter=1)
    ref, d = pair_terms(ckpt, **cfg)
    step(d, batch(), 0)
    step(d, batch(), 1)
    factors = d.calibration_factors_dict()
    state = d.state_dict()
    assert state['loss_calibration.factors'].tolist() == pytest.approx(
        [factors[t] for t in TERMS])
    fresh = build_terms(ckpt, dict(per='term', terms=TERMS, **cfg))
    assert fresh.state_dict()['loss_calibration.factors'].shape == (3, )
    fit_checkpoint(fresh, dict(state_dict=state), 'iter_2.pth', 'resume')  # no shape error
    load_state_dict(fresh, state, strict=True)
    assert fresh.calibration_factors_dict() == factors
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, 'grad', lambda *a, **k: calls.append(1) or real(*a, **k))
    fresh.train()
    losses = step(fresh, batch(), 0)  # what would be its window
    assert calls == []
    raw = step(ref, batch(), 0)
    for term in TERMS:
        want = factors[term] * raw[f'distill.{term}'].item()
        assert losses[f'distill.{term}'].item() == pytest.approx(want, rel=1e-5), term


def test_terms_other_than_returned_are_an_error(ckpt):
    terms = ['loss_two.loss_feat', 'loss_two.loss_other', 'loss_frs_fpn']
    _, d = pair_terms(ckpt, terms=terms, share=SHARE, window=1, at_iter=1)
    with pytest.raises(ValueError, match=r"returned the terms \['loss_two.loss_feat', "
                       r"'loss_two.loss_cls', 'loss_frs_fpn'\].*missing: "
                       r"\['loss_two.loss_other'\], not configured: \['loss_two.loss_cls'\]"):
        step(d, batch(), 0)


def test_term_log_key():
    assert calibration_mod.factor_log_key('loss_skd.loss_at') == 'distill_factor.skd.at'
    assert calibration_mod.factor_log_key('loss_frs_fpn') == 'distill_factor.frs_fpn'


@pytest.mark.parametrize('cfg, words', [
    (dict(per='terms'), r"per must be 'loss'.*or 'term'.*got 'terms' \(did you mean 'term'"),
    (dict(per=None), r"per must be 'loss'.*got None\.$"),
    (dict(per='term'), r"per='term' needs terms.*got None"),
    (dict(per='term', terms=[]), r"per='term' needs terms"),
    (dict(terms=['loss_frs_fpn', 'loss_frs_cls']), r"terms=.* is only read with per='term'"),
    (dict(per='term', terms=['loss_frs_fpn', 'loss_x.a']), r"'loss_x.a' is not a term of a "),
    (dict(per='term', terms=['loss_frs_fpn', 'loss_frs_cls.']), 'is not a term of a'),
    (dict(per='term', terms=['loss_frs_fpn']), "lists no term of the loss 'loss_frs_cls'"),
    (dict(per='term', terms=['loss_frs_fpn'] * 2 + ['loss_frs_cls']), 'more than once'),
    (dict(per='term', terms=['loss_frs_fpn', 'loss_frs_cls', 'loss_frs_cls.a']),
     "'loss_frs_cls' both alone and with keys"),
    (dict(per='term', terms=['loss_frs_fpn', 'loss_frs_cls.loss_a', 'loss_frs_cls.a']),
     r"same logged factor key \['distill_factor.frs_cls.a'\]"),
])
def test_bad_per_term_options(cfg, words):
    losses = {n: torch.nn.Module() for n in NAMES}
    with pytest.raises(ValueError, match=words):
        build_calibration(dict(share=1, window=1, at_iter=1, **cfg), losses, warmup_iters=2)


def test_per_loss_is_the_default():
    losses = {n: torch.nn.Module() for n in NAMES}
    cal = build_calibration(dict(share=1, window=1, at_iter=1), losses, 0)
    assert cal.per == 'loss' and cal.units == list(NAMES) and cal.factors.shape == (2, )
    cal = build_calibration(
        dict(share=1, window=1, at_iter=1, per='term', terms=['loss_frs_cls', 'loss_frs_fpn']),
        losses, 0)
    assert cal.units == ['loss_frs_cls', 'loss_frs_fpn'] and cal.factors.shape == (2, )


def test_structured_kd_terms_each_reach_the_share(ckpt):
    """The case per='term' is for: SKDLoss's three terms (AT, AM, NLD) on the tiny
    RetinaNet pair, one factor each; then each term's gradient norm is `share` times
    the task's on the parameters it reaches, whatever the paper's ratio between them."""
    skd_terms = ['loss_skd.loss_at', 'loss_skd.loss_am', 'loss_skd.loss_nld']
    d = build(
        ckpt,
        dict(share=SHARE, window=1, at_iter=1, per='term', terms=skd_terms),
        recorders=dict(fpn=dict(source='neck')),
        distill_losses=dict(loss_skd=dict(type='SKDLoss', nonlocal_cfg=dict(sub_sample=2))))
    d.train()
    data = batch()
    step(d, data, 0)
    losses = step(d, data, 1)
    factors = d.calibration_factors_dict()
    assert list(factors) == skd_terms and len(set(factors.values())) == 3
    assert [k for k in losses if k.startswith('distill_factor.')] == [
        'distill_factor.skd.at', 'distill_factor.skd.am', 'distill_factor.skd.nld'
    ]
    task = grads(task_total(losses), d)
    for term in skd_terms:
        g = grads(losses[f'distill.{term}'], d)
        reached = [n for n, v in g.items() if v is not None]
        assert norm(g, reached) / norm(task, reached) == pytest.approx(SHARE, rel=1e-4), term
