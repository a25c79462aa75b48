"""CWD (Shu et al., ICCV 2021) against hand-worked cases, scalar loops written
from the formula, and mmrazor 1.0.0's ``ChannelWiseDivergence``.

Expected values never come from the code under test.
"""
import math

import pytest
import torch

from mmkd_det.models.losses.cwd_loss import CWDLoss
from mmkd_det.registry import MODELS


def feats(seed, *shapes, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) * scale for shape in shapes]


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def cwd_loop(s, t, tau):
    """tau^2 / (N C) * sum_{n,c} KL(softmax_i(T_nc / tau) || softmax_i(S_nc / tau)), by loops."""
    n_img, c, h, w = t.shape
    total = 0.0
    for n in range(n_img):
        for ch in range(c):
            ys = [float(v) / tau for v in s[n, ch].reshape(-1)]
            yt = [float(v) / tau for v in t[n, ch].reshape(-1)]
            zs, zt = sum(math.exp(v) for v in ys), sum(math.exp(v) for v in yt)
            for a, b in zip(ys, yt):
                p_s, p_t = math.exp(a) / zs, math.exp(b) / zt
                total += p_t * math.log(p_t / p_s)
    return tau ** 2 * total / (n_img * c)


# ------------------------------------------------------------- hand-worked
def test_hand_case_two_positions():
    # one channel, two positions. T = (0, ln 3): p_T = (1/4, 3/4); S = (0, 0): p_S = (1/2, 1/2)
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2)
    s = torch.zeros(1, 1, 1, 2)
    t = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert CWDLoss()([s], [t]).item() == pytest.approx(kl, rel=1e-6)
    # tau = 2: T / 2 = (0, ln 3 / 2): p_T = (1, sqrt 3) / (1 + sqrt 3); p_S unchanged; x tau^2
    r3 = math.sqrt(3.0)
    p0, p1 = 1 / (1 + r3), r3 / (1 + r3)
    kl2 = p0 * math.log(2 * p0) + p1 * math.log(2 * p1)
    assert CWDLoss(tau=2.0)([s], [t]).item() == pytest.approx(4 * kl2, rel=1e-6)


def test_normalised_by_images_and_channels():
    # two images x two channels, only one map differs (the hand case): KL / (N C) = KL / 4
    s = torch.zeros(2, 2, 1, 2)
    t = torch.zeros(2, 2, 1, 2)
    t[1, 0, 0, 1] = math.log(3.0)
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert CWDLoss(loss_weight=10)([s], [t]).item() == pytest.approx(10 * kl / 4, rel=1e-6)


def test_shift_invariance_and_zero_at_equal():
    # a softmax ignores a constant added to a channel map: only the spatial shape counts
    t = feats(0, (2, 3, 4, 4))[0]
    shifted = t + torch.tensor([5.0, -2.0, 100.0]).view(1, 3, 1, 1)
    assert CWDLoss()([shifted], [t]).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_multi_level_matches_loops(tau):
    shapes = [(2, 3, 4, 5), (2, 3, 2, 3), (2, 3, 1, 2)]
    s, t = feats(1, *shapes, scale=2.0), feats(2, *shapes, scale=3.0)
    expected = 0.5 * sum(cwd_loop(a, b, tau) for a, b in zip(s, t))
    assert CWDLoss(tau=tau, loss_weight=0.5)(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_auto_adapter_when_channels_differ():
    s, t = feats(3, (2, 2, 3, 3), (2, 2, 2, 2)), feats(4, (2, 3, 3, 3), (2, 3, 2, 2))
    loss = MODELS.build(dict(type='CWDLoss'))
    loss.setup(shapes_of(s, t), 'loss_cwd')
    convs = loss.adapters['s_feats'].convs
    assert len(convs) == 2 and convs[0].kernel_size == (1, 1)
    with torch.no_grad():  # output channel k copies input channel min(k, 1)
        for conv in convs:
            conv.weight.zero_()
            conv.bias.zero_()
            for k in range(3):
                conv.weight[k, min(k, 1)] = 1.0
    mapped = [torch.cat([x, x[:, 1:2]], 1) for x in s]
    expected = sum(cwd_loop(a, b, 1.0) for a, b in zip(mapped, t))
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)
    same = CWDLoss()
    same.setup(shapes_of(t, t), 'loss_cwd')
    assert 's_feats' not in same.adapters


# --------------------------------------------------------------- gradients
def test_gradients_reach_student_only():
    s = [f.requires_grad_() for f in feats(5, (2, 3, 4, 4), (2, 3, 2, 2))]
    t = [f.requires_grad_() for f in feats(6, (2, 3, 4, 4), (2, 3, 2, 2))]
    CWDLoss(tau=2.0)(s, t).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)


def test_gradient_formula_and_optimum():
    # d/dS_i of tau^2 KL(p_T || softmax(S / tau)) / (N C) = tau (p_S,i - p_T,i) / (N C)
    s = feats(7, (1, 1, 2, 2))[0].requires_grad_()
    t = feats(8, (1, 1, 2, 2))[0]
    tau = 2.0
    CWDLoss(tau=tau)([s], [t]).backward()
    p_s = torch.softmax(s.detach().reshape(-1) / tau, 0)
    p_t = torch.softmax(t.reshape(-1) / tau, 0)
    torch.testing.assert_close(s.grad.reshape(-1), tau * (p_s - p_t), rtol=1e-5, atol=1e-7)
    same = t.clone().requires_grad_()
    CWDLoss()([same], [t]).backward()
    assert same.grad.abs().max().item() < 1e-7


# ------------------------------------------------------------------ errors
def test_level_count_mismatch():
    s, t = feats(9, (1, 2, 4, 4), (1, 2, 2, 2)), feats(10, (1, 2, 4, 4))
    with pytest.raises(ValueError, match='2 student levels but 1 teacher'):
        CWDLoss()(s, t)
    with pytest.raises(ValueError, match='same number of FPN levels'):
        CWDLoss().setup(shapes_of(s, t), 'loss_cwd')


def test_shape_errors():
    s, t = feats(11, (1, 2, 2, 2)), feats(12, (1, 2, 4, 4))
    with pytest.raises(ValueError, match='resize_student'):
        CWDLoss().setup(shapes_of(s, t), 'loss_cwd')
    with pytest.raises(ValueError, match='resize_student'):
        CWDLoss()(s, t)
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        CWDLoss(adapter=None).setup(
            shapes_of(feats(0, (1, 2, 4, 4)), feats(1, (1, 3, 4, 4))), 'loss_cwd')
    with pytest.raises(ValueError, match='setup'):  # channels differ, adapter never built
        CWDLoss()(feats(0, (1, 2, 4, 4)), feats(1, (1, 3, 4, 4)))
    with pytest.raises(ValueError, match='tau'):
        CWDLoss(tau=0)


# --------------------------------------------------- parity with mmrazor
def _mmrazor_cwd():
    try:
        from mmkd_det.compat import import_mmrazor_models
        import_mmrazor_models()
        from mmrazor.models.losses import ChannelWiseDivergence
    except ImportError as err:
        pytest.skip(f'mmrazor not importable: {err}')
    return ChannelWiseDivergence


@pytest.mark.parametrize('tau,loss_weight', [(1.0, 10.0), (4.0, 1.0), (0.5, 5.0)])
def test_parity_with_mmrazor(tau, loss_weight):
    Razor = _mmrazor_cwd()
    shapes = [(2, 8, 16, 20), (2, 8, 8, 10), (2, 8, 4, 5), (2, 8, 2, 3), (2, 8, 1, 2)]
    s, t = feats(20, *shapes, scale=2.0), feats(21, *shapes, scale=3.0)
    razor = Razor(tau=tau, loss_weight=loss_weight)
    expected = sum(razor(a, b).item() for a, b in zip(s, t))  # mmrazor: one call per level
    ours = CWDLoss(tau=tau, loss_weight=loss_weight)
    ours.setup(shapes_of(s, t), 'loss_cwd')
    assert ours(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_standardise_is_cwd_on_per_channel_z_scores():
    """standardise=True: CWD of (x - mean_c) / sqrt(var_c + 1e-5), mean and biased
    variance per channel over (N, H, W), on both sides (mmyolo's BN(affine=False))."""
    torch.manual_seed(0)
    s = torch.randn(2, 3, 4, 5) * 3 + 1
    t = torch.randn(2, 3, 4, 5) * 0.5 - 2

    def z(x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean)**2).mean(dim=(0, 2, 3), keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5)

    loss = CWDLoss(tau=2.0, standardise=True, adapter=None)
    want = cwd_loop(z(s), z(t), 2.0)
    assert loss([s], [t]).item() == pytest.approx(want, rel=1e-5)
    assert abs(want - cwd_loop(s, t, 2.0)) > 1e-3
