"""PKD (Cao et al., NeurIPS 2022) against hand-worked cases, a Pearson-correlation
re-derivation written here, and mmrazor 1.0.0's ``PKDLoss``.

Expected values never come from the code under test.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd_det.models.losses.pkd_loss import PKDLoss, channel_standardise
from mmkd_det.registry import MODELS

EPS = 1e-6


def feats(seed, *shapes, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) * scale + shift for shape in shapes]


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def pearson_reference(s, t, eps=EPS):
    """One level, from per-channel moments (float64): with s^ = (s - mu_s)/(sd_s + eps),
    sum (s^ - t^)^2 = (M-1) [sd_s^2/(sd_s+eps)^2 + sd_t^2/(sd_t+eps)^2
                             - 2 cov/((sd_s+eps)(sd_t+eps))],
    sd and cov unbiased; the loss is the mean over N C H W values, halved."""
    s, t = s.double(), t.double()
    n, c, h, w = s.shape
    m = n * h * w
    total = 0.0
    for ch in range(c):
        a, b = s[:, ch].reshape(-1), t[:, ch].reshape(-1)
        da, db = a - a.sum() / m, b - b.sum() / m
        var_a, var_b = float((da * da).sum()) / (m - 1), float((db * db).sum()) / (m - 1)
        cov = float((da * db).sum()) / (m - 1)
        sa, sb = math.sqrt(var_a) + eps, math.sqrt(var_b) + eps
        total += (m - 1) * (var_a / sa ** 2 + var_b / sb ** 2 - 2 * cov / (sa * sb))
    return total / (n * c * h * w) / 2


# ------------------------------------------------------------- hand-worked
def test_hand_case_reversed_ramp():
    # one channel, values S = (1, 2, 3), T = (3, 2, 1): mean 2, unbiased std 1,
    # so S^ = (-1, 0, 1)/(1+eps), T^ = (1, 0, -1)/(1+eps); squared errors (4, 0, 4)
    # -> mean 8/3, halved 4/3 (= (M-1)/M * (1 - r) with r = -1, M = 3)
    s = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    t = torch.tensor([3.0, 2.0, 1.0]).view(1, 1, 1, 3)
    expected = 4 / 3 / (1 + EPS) ** 2
    assert PKDLoss()([s], [t]).item() == pytest.approx(expected, rel=1e-6)
    assert PKDLoss(loss_weight=6)([s], [t]).item() == pytest.approx(6 * expected, rel=1e-6)


def test_standardise_hand_case_and_batch_statistics():
    # the channel statistics pool both images: values 0, 2 | 4, 6 -> mean 3,
    # unbiased var (9 + 1 + 1 + 9) / 3 = 20/3
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]]).view(2, 1, 1, 2)
    sd = math.sqrt(20 / 3)
    expected = torch.tensor([[-3.0, -1.0], [1.0, 3.0]]).view(2, 1, 1, 2) / (sd + EPS)
    torch.testing.assert_close(channel_standardise(x), expected, rtol=1e-6, atol=1e-7)
    # a constant channel maps to zeros (std 0, divided by eps)
    assert channel_standardise(torch.full((2, 1, 2, 2), 5.0)).abs().max().item() == 0.0


def test_identical_and_affine_student_give_zero():
    t = feats(0, (2, 3, 4, 5))[0]
    assert PKDLoss()([t.clone()], [t]).item() == pytest.approx(0.0, abs=1e-10)
    # PCC ignores per-channel positive scale and shift of the student (up to eps)
    scale = torch.tensor([0.1, 3.0, 20.0]).view(1, 3, 1, 1)
    shift = torch.tensor([-5.0, 0.5, 7.0]).view(1, 3, 1, 1)
    assert PKDLoss()([t * scale + shift], [t]).item() < 1e-6


@pytest.mark.parametrize('seed', [1, 2])
def test_multi_level_matches_pearson_reference(seed):
    shapes = [(2, 3, 4, 5), (2, 3, 2, 3), (2, 3, 1, 2)]
    s = feats(seed, *shapes, scale=3.0, shift=1.0)
    t = feats(seed + 10, *shapes, scale=0.5, shift=-2.0)
    s[1] = s[1] + 2 * t[1]  # a correlated level
    expected = 10 * sum(pearson_reference(a, b) for a, b in zip(s, t))
    assert PKDLoss(loss_weight=10)(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_resize_student_matches_manual_interpolation():
    s = feats(3, (2, 4, 3, 3), (2, 4, 2, 2))
    t = feats(4, (2, 4, 6, 6), (2, 4, 2, 2))
    up = F.interpolate(s[0], size=(6, 6), mode='bilinear', align_corners=False)
    expected = pearson_reference(up, t[0]) + pearson_reference(s[1], t[1])
    # directly (no setup, as mmrazor) and built through the registry + setup
    assert PKDLoss()(s, t).item() == pytest.approx(expected, rel=1e-5)
    loss = MODELS.build(dict(type='PKDLoss'))
    loss.setup(shapes_of(s, t), 'loss_pkd')
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_auto_adapter_only_on_request():
    s, t = feats(5, (1, 2, 3, 3)), feats(6, (1, 3, 3, 3))
    loss = PKDLoss(adapter='auto')
    loss.setup(shapes_of(s, t), 'loss_pkd')
    conv = loss.adapters['s_feats'].convs[0]
    assert conv.kernel_size == (1, 1) and (conv.in_channels, conv.out_channels) == (2, 3)
    with torch.no_grad():  # output channel k copies input channel min(k, 1)
        conv.weight.zero_()
        conv.bias.zero_()
        for k in range(3):
            conv.weight[k, min(k, 1)] = 1.0
    mapped = torch.cat([s[0], s[0][:, 1:2]], 1)
    assert loss(s, t).item() == pytest.approx(pearson_reference(mapped, t[0]), rel=1e-5)
    assert 's_feats' not in PKDLoss().adapters  # default: no adapter


# --------------------------------------------------------------- gradients
def test_gradients_reach_student_only():
    s = [f.requires_grad_() for f in feats(7, (2, 3, 4, 4), (2, 3, 2, 2))]
    t = [f.requires_grad_() for f in feats(8, (2, 3, 4, 4), (2, 3, 2, 2))]
    PKDLoss()(s, t).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)


def test_gradients_vanish_at_optimum():
    t = feats(9, (2, 3, 4, 4))
    s = [t[0].clone().requires_grad_()]
    PKDLoss()(s, t).backward()
    assert s[0].grad.abs().max().item() < 1e-6


# ------------------------------------------------------------------ errors
def test_level_count_mismatch():
    s, t = feats(10, (1, 2, 4, 4), (1, 2, 2, 2)), feats(11, (1, 2, 4, 4))
    with pytest.raises(ValueError, match='2 student levels but 1 teacher'):
        PKDLoss()(s, t)
    with pytest.raises(ValueError, match='same number of FPN levels'):
        PKDLoss().setup(shapes_of(s, t), 'loss_pkd')


def test_channel_mismatch_without_adapter():
    s, t = feats(12, (1, 2, 4, 4)), feats(13, (1, 3, 4, 4))
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        PKDLoss().setup(shapes_of(s, t), 'loss_pkd')
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        PKDLoss()(s, t)


def test_size_mismatch_without_resize():
    s, t = feats(14, (1, 2, 2, 2)), feats(15, (1, 2, 4, 4))
    with pytest.raises(ValueError, match='resize_student'):
        PKDLoss(resize_student=False).setup(shapes_of(s, t), 'loss_pkd')
    with pytest.raises(ValueError, match='resize_student'):
        PKDLoss(resize_student=False)(s, t)
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        PKDLoss()([torch.zeros(2, 3, 4)], [torch.zeros(2, 3, 4)])


# --------------------------------------------------- parity with mmrazor
def _mmrazor_pkd():
    try:
        from mmkd_det.compat import import_mmrazor_models
        import_mmrazor_models()
        from mmrazor.models.losses import PKDLoss as RazorPKD
    except ImportError as err:
        pytest.skip(f'mmrazor not importable: {err}')
    return RazorPKD


@pytest.mark.parametrize('loss_weight', [1.0, 6.0])
def test_parity_with_mmrazor(loss_weight):
    RazorPKD = _mmrazor_pkd()
    # FPN-like: the student smaller at the first two levels (resized), wild scales
    s = feats(20, (2, 8, 10, 12), (2, 8, 4, 6), (2, 8, 3, 3), (2, 8, 2, 2), scale=4.0, shift=3)
    t = feats(21, (2, 8, 20, 24), (2, 8, 8, 12), (2, 8, 3, 3), (2, 8, 2, 2), scale=0.2)
    s[2] = s[2] + 10 * t[2]
    razor = RazorPKD(loss_weight=loss_weight, resize_stu=True)
    expected = razor(tuple(s), tuple(t)).item()
    ours = PKDLoss(loss_weight=loss_weight)
    ours.setup(shapes_of(s, t), 'loss_pkd')
    assert ours(s, t).item() == pytest.approx(expected, rel=1e-6)
    # mmrazor is per call; the sum of per-level calls equals our multi-level value
    per_level = sum(razor(a, b).item() for a, b in zip(s, t))
    assert PKDLoss(loss_weight=loss_weight)(s, t).item() == pytest.approx(per_level, rel=1e-6)
