"""SSIM-KD (de Rijk et al., NeurIPS 2022) against hand-worked cases and an explicit
per-pixel loop over the SSIM window written here (float64, 2-D Gaussian built
directly, border indices mapped by hand).

Expected values never come from the code under test.
"""
import math

import pytest
import torch

from mmkd_det.models.losses.ssim_kd_loss import (SSIMKDLoss, local_filter, minmax_rescale, ssim_map,
                                                 window_1d)
from mmkd_det.registry import MODELS

C1 = (0.01 * 1.0)**2
C2 = (0.03 * 1.0)**2


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -------------------------------------------------- independent reference
def border_index(i, n, padding):
    """Source index of padded position ``i`` of a length-``n`` axis (None: a zero)."""
    if 0 <= i < n:
        return i
    if padding == 'zeros':
        return None
    if padding == 'replicate':
        return min(max(i, 0), n - 1)
    # reflect without repeating the edge: -1 -> 1, n -> n - 2
    return -i if i < 0 else 2 * (n - 1) - i


def window_2d(k, sigma, kind):
    """k x k weights summing to 1, written as one 2-D formula (not an outer product)."""
    half = (k - 1) / 2
    w = [[(1.0 if kind == 'uniform' else math.exp(-((a - half)**2 + (b - half)**2) /
                                                   (2 * sigma**2))) for b in range(k)]
         for a in range(k)]
    total = sum(map(sum, w))
    return [[v / total for v in row] for row in w]


def loop_ssim(s, t, k=11, sigma=1.5, kind='gaussian', padding='reflect', c1=C1, c2=C2):
    """SSIM per (n, c, i, j) by explicit window sums, float64 Python numbers."""
    n_, c_, h, w = s.shape
    if padding == 'reflect' and (k // 2 >= h or k // 2 >= w):
        padding = 'replicate'  # the documented fallback on small levels
    win = window_2d(k, sigma, kind)
    p = (k - 1) // 2
    out = torch.zeros(s.shape, dtype=torch.float64)
    for n in range(n_):
        for c in range(c_):
            a, b = s[n, c].double().tolist(), t[n, c].double().tolist()
            for i in range(h):
                for j in range(w):
                    ms = mt = ss = tt = st = 0.0
                    for di in range(k):
                        for dj in range(k):
                            y = border_index(i + di - p, h, padding)
                            x = border_index(j + dj - p, w, padding)
                            if y is None or x is None:
                                continue
                            g = win[di][dj]
                            u, v = a[y][x], b[y][x]
                            ms += g * u
                            mt += g * v
                            ss += g * u * u
                            tt += g * v * v
                            st += g * u * v
                    vs, vt, cov = ss - ms * ms, tt - mt * mt, st - ms * mt
                    out[n, c, i, j] = ((2 * ms * mt + c1) * (2 * cov + c2) /
                                       ((ms * ms + mt * mt + c1) * (vs + vt + c2)))
    return out


def loop_minmax_image(x):
    """Per image: (x - min) / (max - min + 1e-6) over C, H, W."""
    out = x.clone().double()
    for n in range(x.shape[0]):
        lo, hi = float(x[n].min()), float(x[n].max())
        out[n] = (x[n].double() - lo) / (hi - lo + 1e-6)
    return out


# ------------------------------------------------------------- hand-worked
def test_window_hand_values():
    # k = 3, sigma = 1.5: exp(-1/4.5) = 0.800737 at +-1, 1 at 0; sum 2.601475
    e = math.exp(-1 / 4.5)
    expected = torch.tensor([e, 1.0, e]) / (1 + 2 * e)
    torch.testing.assert_close(window_1d(3, 1.5), expected)
    assert window_1d(3, 1.5)[1].item() == pytest.approx(0.384397, abs=1e-6)
    torch.testing.assert_close(window_1d(4, kind='uniform'), torch.full((4, ), 0.25))
    assert window_1d(11).sum().item() == pytest.approx(1.0)


def test_identical_features_give_zero():
    t = [rand(0, 2, 3, 6, 7), rand(1, 2, 3, 3, 4)]
    assert abs(SSIMKDLoss()(t, t).item()) < 1e-6


def test_constant_shift_hand_value():
    # constant maps without min-max: mu_T = a, mu_S = a + d, variances and covariance 0,
    # so SSIM = (2 a (a + d) + C1) / (a^2 + (a + d)^2 + C1) and
    # (1 - SSIM) / 2 = d^2 / (2 (a^2 + (a + d)^2 + C1));
    # a = 0.2, d = 0.1: 0.01 / (2 * 0.1301) = 0.0384320
    # (kornia's eps 1e-12 in the denominator moves it by ~1e-7 relative. float64: in
    # float32, E[x^2] - mu^2 of a flat window leaves a variance of ~1e-8, 1e-5 of
    # C2 = 9e-4, and the value is off by ~2e-4 relative)
    t = torch.full((1, 2, 6, 6), 0.2, dtype=torch.float64)
    s = t + 0.1
    expected = 0.01 / (2 * (0.04 + 0.09 + 1e-4))
    assert expected == pytest.approx(0.0384320, abs=1e-7)
    for padding in ('reflect', 'replicate', 'zeros'):
        loss = SSIMKDLoss(minmax=None, padding=padding)
        if padding != 'zeros':
            assert loss([s], [t]).item() == pytest.approx(expected, rel=1e-6)
            assert loss([s.float()], [t.float()]).item() == pytest.approx(expected, rel=1e-3)
        else:  # zero padding darkens the borders: larger than the flat value
            assert loss([s], [t]).item() > expected * 1.01
    # luminance alone gives the same; contrast and structure of flat maps are 1
    assert SSIMKDLoss(minmax=None, exponents=(1, 0, 0))([s], [t]).item() == pytest.approx(
        expected, rel=1e-6)
    assert SSIMKDLoss(minmax=None, exponents=(0, 1, 1))([s], [t]).item() == pytest.approx(
        0.0, abs=1e-6)
    # 1 - SSIM without the halving doubles it; loss_weight scales it
    assert SSIMKDLoss(minmax=None, halve=False, loss_weight=4)([s], [t]).item() == \
        pytest.approx(8 * expected, rel=1e-6)


def test_minmax_makes_affine_student_free():
    # psi removes a positive scale and a shift of the whole image: loss 0
    t = rand(2, 2, 3, 6, 6)
    assert abs(SSIMKDLoss()([3 * t + 5], [t]).item()) < 1e-5
    # without psi the same student is far off
    assert SSIMKDLoss(minmax=None)([3 * t + 5], [t]).item() > 0.1


def test_minmax_scopes_hand_values():
    x = torch.tensor([[0.0, 2.0], [4.0, 8.0]]).view(1, 2, 1, 2)
    # image: min 0, max 8 over both channels
    torch.testing.assert_close(
        minmax_rescale(x, 'image'),
        torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 2, 1, 2) * 8 / (8 + 1e-6))
    # channel: (0, 2) -> (0, 1); (4, 8) -> (0, 1)
    torch.testing.assert_close(
        minmax_rescale(x, 'channel'),
        torch.tensor([0.0, 2 / (2 + 1e-6), 0.0, 4 / (4 + 1e-6)]).view(1, 2, 1, 2))
    assert minmax_rescale(x, None) is x


# ----------------------------------------------------- against the loop
@pytest.mark.parametrize('k,kind,padding', [(11, 'gaussian', 'reflect'), (3, 'gaussian', 'zeros'),
                                            (5, 'uniform', 'replicate'),
                                            (4, 'gaussian', 'replicate')])
def test_ssim_map_matches_loop(k, kind, padding):
    s, t = rand(3, 1, 2, 6, 6).sigmoid(), rand(4, 1, 2, 6, 6).sigmoid()
    s = 0.5 * s + 0.5 * t  # correlated
    # an even window (k = 4) is centred at (k-1)/2 in the loop: kornia's +0.5 offset
    ours = ssim_map(s, t, window_1d(k, 1.5, kind), C1, C2, padding=padding)
    torch.testing.assert_close(ours.double(), loop_ssim(s, t, k, 1.5, kind, padding),
                               rtol=1e-4, atol=1e-5)


def test_loss_matches_loop_two_levels_and_small_level_fallback():
    # level 0: 1 x 2 x 6 x 6 (reflect); level 1: 1 x 2 x 3 x 3 (11 x 11 reflect impossible:
    # replicate, as documented)
    s = [rand(5, 1, 2, 6, 6) * 3 + 1, rand(6, 1, 2, 3, 3)]
    t = [rand(7, 1, 2, 6, 6), rand(8, 1, 2, 3, 3) * 0.1]
    s[0] = s[0] + 2 * t[0]
    expected = 0.0
    for a, b in zip(s, t):
        ssim = loop_ssim(loop_minmax_image(a), loop_minmax_image(b))
        expected += float(((1 - ssim) / 2).mean())
    loss = MODELS.build(dict(type='SSIMKDLoss', loss_weight=2.0))
    loss.setup(shapes_of(s, t), 'loss_ssim')
    assert loss(s, t).item() == pytest.approx(2 * expected, rel=1e-4)


def test_reflect_falls_back_to_replicate_on_small_maps():
    x = rand(9, 1, 1, 2, 3)
    w = window_1d(11)
    torch.testing.assert_close(local_filter(x, w, 'reflect'), local_filter(x, w, 'replicate'))
    # on a large map they differ
    y = rand(10, 1, 1, 12, 12)
    assert not torch.allclose(local_filter(y, w, 'reflect'), local_filter(y, w, 'replicate'))


def test_three_terms_multiply_to_the_closed_form():
    s, t = rand(11, 2, 2, 7, 7).sigmoid(), rand(12, 2, 2, 7, 7).sigmoid()
    w = window_1d(5)
    terms = [ssim_map(s, t, w, C1, C2, e) for e in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    torch.testing.assert_close(terms[0] * terms[1] * terms[2], ssim_map(s, t, w, C1, C2),
                               rtol=1e-4, atol=1e-5)
    # structure alone of a student equal to the teacher plus a constant is 1
    torch.testing.assert_close(
        ssim_map(t + 0.3, t, w, C1, C2, (0, 0, 1)), torch.ones_like(t), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------- adapters
def test_adapter_auto_and_always():
    s, t = [rand(13, 2, 4, 6, 6)], [rand(14, 2, 8, 6, 6)]
    loss = SSIMKDLoss()
    loss.setup(shapes_of(s, t), 'loss_ssim')
    conv = loss.adapters['s_feats'].convs[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (4, 8, (1, 1))
    assert torch.isfinite(loss(s, t))
    same = SSIMKDLoss()
    same.setup(shapes_of(t, t), 'loss_ssim')
    assert 's_feats' not in same.adapters
    always = SSIMKDLoss(adapter=dict(kernel_size=1))
    always.setup(shapes_of(t, t), 'loss_ssim')
    assert always.adapters['s_feats'].convs[0].in_channels == 8


# --------------------------------------------------------------- gradients
def test_gradients_reach_student_and_adapter_not_teacher():
    s = [rand(15, 2, 4, 6, 6).requires_grad_()]
    t = [rand(16, 2, 8, 6, 6).requires_grad_()]
    loss = SSIMKDLoss()
    loss.setup(shapes_of(s, t), 'loss_ssim')
    loss(s, t).backward()
    assert s[0].grad is not None and s[0].grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.adapters.parameters())
    assert t[0].grad is None


# ------------------------------------------------------------------ errors
def test_errors():
    with pytest.raises(ValueError, match='padding'):
        SSIMKDLoss(padding='circular')
    with pytest.raises(ValueError, match='minmax'):
        SSIMKDLoss(minmax='pixel')
    with pytest.raises(ValueError, match='non-negative integers'):
        SSIMKDLoss(exponents=(1, 1, 0.5))
    with pytest.raises(ValueError, match='window'):
        SSIMKDLoss(window='box')
    s, t = [rand(17, 1, 4, 6, 6)], [rand(18, 1, 8, 6, 6)]
    with pytest.raises(ValueError, match='channel mismatch'):
        SSIMKDLoss(adapter=None).setup(shapes_of(s, t), 'loss_ssim')
    with pytest.raises(ValueError, match='adapted student'):
        SSIMKDLoss()(s, t)  # no setup: no adapter
    with pytest.raises(ValueError, match='resize_student'):
        SSIMKDLoss().setup(shapes_of([rand(19, 1, 8, 3, 3)], t), 'loss_ssim')


def test_bf16_records_give_a_float32_loss():
    # under autocast the records are bf16; the loss casts them and computes in fp32
    s, t = [rand(20, 2, 3, 8, 8)], [rand(21, 2, 3, 8, 8)]
    expected = SSIMKDLoss()(s, t).item()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = SSIMKDLoss()([s[0].bfloat16()], [t[0].bfloat16()])
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(expected, rel=2e-2)  # bf16 rounding of the inputs


# ---------------------------------------------------- parity with kornia
@pytest.mark.parametrize('shape,k', [((2, 4, 20, 24), 11), ((1, 3, 9, 7), 11), ((2, 2, 12, 12), 5)])
def test_parity_with_kornia_ssim_loss(shape, k):
    """kornia's ``ssim_loss`` (the paper's implementation; not a dependency: skipped when
    absent) on the same min-max rescaled features. Checked: kornia 0.9.0, equal to 1e-15."""
    kornia_losses = pytest.importorskip('kornia.losses')
    s, t = rand(30, *shape).double(), rand(31, *shape).double()
    s = s + 0.7 * t
    expected = kornia_losses.ssim_loss(minmax_rescale(s), minmax_rescale(t), window_size=k)
    ours = SSIMKDLoss(window_size=k)([s], [t])
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12)
