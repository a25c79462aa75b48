"""FRS losses (Du et al. 2021, Eqs. 5-7) against scalar loops written from the paper."""
import math

import pytest
import torch

from mmkd_det.models.losses import FRSFeatureLoss, FRSHeadLoss, feature_richness
from mmkd_det.registry import MODELS


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def eq6_loop(s, t, logits, normalize='batch'):
    """Eq. 6 with N_l over the batch (authors' code) or per image, by plain loops."""
    n_img, c, h, w = t.shape
    num, den = [0.0] * n_img, [0.0] * n_img
    for n in range(n_img):
        for i in range(h):
            for j in range(w):
                mask = max(sig(float(logits[n, k, i, j])) for k in range(logits.shape[1]))
                sq = sum((float(t[n, ch, i, j]) - float(s[n, ch, i, j])) ** 2
                         for ch in range(c))
                num[n] += mask * sq
                den[n] += mask
    if normalize == 'batch':
        return sum(num) / sum(den)
    return sum(a / b for a, b in zip(num, den)) / n_img


def eq7_loop(s_logits, t_logits, normalize='batch'):
    n_img, k_ch, h, w = t_logits.shape
    num, den = [0.0] * n_img, [0.0] * n_img
    for n in range(n_img):
        for i in range(h):
            for j in range(w):
                mask = max(sig(float(t_logits[n, k, i, j])) for k in range(k_ch))
                bce = 0.0
                for k in range(k_ch):
                    p_t, p_s = sig(float(t_logits[n, k, i, j])), sig(float(s_logits[n, k, i, j]))
                    bce -= p_t * math.log(p_s) + (1 - p_t) * math.log(1 - p_s)
                num[n] += mask * bce
                den[n] += mask
    if normalize == 'batch':
        return sum(num) / sum(den)
    return sum(a / b for a, b in zip(num, den)) / n_img


def test_feature_richness_tiny_case():
    # one location, logits (0, ln 3): sigmoids 0.5 and 0.75 -> S = 0.75
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)
    assert feature_richness(logits).item() == pytest.approx(0.75)
    assert not feature_richness(logits.requires_grad_()).requires_grad


def test_feature_loss_hand_case_two_locations():
    # 1 image, 1 channel, 1x2 map. Masks 0.5 (logit 0) and 0.75 (logit ln 3).
    # Squared errors 4 and 1 -> (0.5*4 + 0.75*1) / (0.5 + 0.75) = 2.2
    s = torch.tensor([0.0, 0.0]).view(1, 1, 1, 2)
    t = torch.tensor([2.0, 1.0]).view(1, 1, 1, 2)
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    loss = FRSFeatureLoss(adapter=None, loss_weight=1.0)
    assert loss([s], [t], [logits]).item() == pytest.approx(2.2)


@pytest.mark.parametrize('normalize', ['batch', 'image'])
def test_feature_loss_matches_loops(normalize):
    g = torch.Generator().manual_seed(0)
    levels = [(2, 3, 4, 5), (2, 3, 2, 3)]
    s = [torch.randn(*shape, generator=g) for shape in levels]
    t = [torch.randn(*shape, generator=g) for shape in levels]
    logits = [torch.randn(shape[0], 4, *shape[2:], generator=g) * 3 for shape in levels]
    loss = FRSFeatureLoss(adapter=None, loss_weight=0.5, normalize=normalize)
    expected = 0.5 * sum(eq6_loop(a, b, c, normalize) for a, b, c in zip(s, t, logits))
    assert loss(s, t, logits).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('normalize', ['batch', 'image'])
def test_head_loss_matches_loops(normalize):
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 6, 2, 2, generator=g)]
    t = [torch.randn(2, 6, 3, 4, generator=g) * 2, torch.randn(2, 6, 2, 2, generator=g)]
    loss = FRSHeadLoss(loss_weight=2.0, normalize=normalize)
    expected = 2.0 * sum(eq7_loop(a, b, normalize) for a, b in zip(s, t))
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('normalize', ['batch', 'image'])
def test_head_loss_probabilities_match_loops_below_saturation(normalize):
    # the authors' BCE on probabilities: the same loop value while sigmoid(s) < 1
    g = torch.Generator().manual_seed(1)
    s = [torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 6, 2, 2, generator=g)]
    t = [torch.randn(2, 6, 3, 4, generator=g) * 2, torch.randn(2, 6, 2, 2, generator=g)]
    loss = FRSHeadLoss(loss_weight=2.0, normalize=normalize, bce_input='probabilities')
    expected = 2.0 * sum(eq7_loop(a, b, normalize) for a, b in zip(s, t))
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_head_loss_saturated_student_logit():
    # one location, one channel, teacher logit 0: S = 0.5 = target, the loss is the BCE.
    # s = 20: sigmoid(20) is exactly 1 in fp32 (above 24 ln 2 = 16.64).
    # logits: softplus(20) - 0.5 x 20 = 10.000000002, gradient sigmoid(20) - 0.5 = 0.5.
    # probabilities: -(0.5 log 1 + 0.5 max(log 0, -100)) = 50, gradient exactly 0.
    t = [torch.zeros(1, 1, 1, 1)]
    for form, value, grad in (('logits', 10.0, 0.5), ('probabilities', 50.0, 0.0)):
        s = torch.full((1, 1, 1, 1), 20.0, requires_grad=True)
        out = FRSHeadLoss(bce_input=form)([s], t)
        assert out.item() == pytest.approx(value, rel=1e-6)
        out.backward()
        assert s.grad.item() == pytest.approx(grad, abs=1e-7)
    # just below saturation (s = 16.5, sigmoid(s) < 1) it still has sigmoid(s) - 0.5 = 0.5
    s = torch.full((1, 1, 1, 1), 16.5, requires_grad=True)
    FRSHeadLoss(bce_input='probabilities')([s], t).backward()
    assert s.grad.item() == pytest.approx(0.5, rel=1e-3)
    with pytest.raises(ValueError, match='bce_input'):
        FRSHeadLoss(bce_input='probs')


def test_batch_and_image_normalisation_differ():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 2, 3, 3, generator=g), torch.randn(2, 2, 3, 3, generator=g)
    logits = torch.randn(2, 3, 3, 3, generator=g)
    logits[1] += 4  # second image much "richer"
    a = FRSFeatureLoss(adapter=None, normalize='batch')([s], [t], [logits])
    b = FRSFeatureLoss(adapter=None, normalize='image')([s], [t], [logits])
    assert abs(a.item() - b.item()) > 1e-3


def test_gradients_reach_student_only_and_vanish_at_optimum():
    g = torch.Generator().manual_seed(3)
    t = torch.randn(1, 4, 3, 3, generator=g, requires_grad=True)
    t_logits = torch.randn(1, 5, 3, 3, generator=g, requires_grad=True)
    s = t.detach().clone().requires_grad_(True)
    s_logits = t_logits.detach().clone().requires_grad_(True)
    feat = FRSFeatureLoss(adapter=None)([s], [t], [t_logits])
    head = FRSHeadLoss()([s_logits], [t_logits])
    assert feat.item() == pytest.approx(0.0)
    (feat + head).backward()
    assert t.grad is None and t_logits.grad is None
    # BCE(sigma(s), sigma(t)) is minimal at s == t: d/ds = sigma(s) - sigma(t) = 0
    assert s_logits.grad.abs().max().item() < 1e-6
    assert s.grad.abs().max().item() < 1e-6


def test_adapter_is_3x3_per_level_and_applied():
    loss = MODELS.build(dict(type='FRSFeatureLoss'))
    shapes = dict(s_feats=[torch.Size([1, 2, 4, 4]), torch.Size([1, 2, 2, 2])],
                  t_feats=[torch.Size([1, 3, 4, 4]), torch.Size([1, 3, 2, 2])],
                  t_logits=[torch.Size([1, 5, 4, 4]), torch.Size([1, 5, 2, 2])])
    loss.setup(shapes, name='loss_frs_fpn')
    convs = loss.adapters['s_feats'].convs
    assert len(convs) == 2 and convs[0].kernel_size == (3, 3)
    assert (convs[0].in_channels, convs[0].out_channels) == (2, 3)
    # identity-like adapter: output channel k copies input channel min(k, 1)
    g = torch.Generator().manual_seed(4)
    s = [torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 2, 2, generator=g)]
    t = [torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 2, 2, generator=g)]
    lg = [torch.randn(1, 5, 4, 4, generator=g), torch.randn(1, 5, 2, 2, generator=g)]
    with torch.no_grad():
        for conv in convs:
            conv.weight.zero_()
            conv.bias.zero_()
            for k in range(3):
                conv.weight[k, min(k, 1), 1, 1] = 1.0
    mapped = [torch.cat([x, x[:, 1:2]], 1) for x in s]
    expected = sum(eq6_loop(m, b, c) for m, b, c in zip(mapped, t, lg))
    assert loss(s, t, lg).item() == pytest.approx(expected, rel=1e-5)


def test_setup_errors_are_clear():
    shapes = dict(s_feats=[torch.Size([1, 2, 4, 4])], t_feats=[torch.Size([1, 3, 4, 4])],
                  t_logits=[torch.Size([1, 5, 4, 4])])
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        FRSFeatureLoss(adapter=None).setup(shapes, name='x')
    bad_hw = dict(shapes, t_feats=[torch.Size([1, 2, 8, 8])])
    with pytest.raises(ValueError, match='resize_student'):
        FRSFeatureLoss(adapter=None).setup(bad_hw, name='x')
    head = dict(s_logits=[torch.Size([1, 9 * 6, 4, 4])], t_logits=[torch.Size([1, 9 * 80, 4, 4])])
    with pytest.raises(ValueError, match='num_classes'):
        FRSHeadLoss().setup(head, name='loss_frs_cls')
    with pytest.raises(ValueError, match='normalize'):
        FRSHeadLoss(normalize='pixel')


def test_resize_student_matches_manual_interpolation():
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(5)
    s = [torch.randn(1, 2, 3, 3, generator=g)]
    t = [torch.randn(1, 2, 6, 6, generator=g)]
    lg = [torch.randn(1, 4, 6, 6, generator=g)]
    shapes = dict(s_feats=[s[0].shape], t_feats=[t[0].shape], t_logits=[lg[0].shape])
    loss = FRSFeatureLoss(adapter=None, resize_student=True)
    loss.setup(shapes, name='x')
    up = F.interpolate(s[0], size=(6, 6), mode='bilinear', align_corners=False)
    assert loss(s, t, lg).item() == pytest.approx(eq6_loop(up, t[0], lg[0]), rel=1e-5)


def test_auto_adapter_is_1x1_only_when_channels_differ():
    shapes = dict(s_feats=[torch.Size([1, 2, 4, 4])], t_feats=[torch.Size([1, 3, 4, 4])],
                  t_logits=[torch.Size([1, 5, 4, 4])])
    loss = FRSFeatureLoss(adapter='auto')
    loss.setup(shapes, name='x')
    conv = loss.adapters['s_feats'].convs[0]
    assert conv.kernel_size == (1, 1) and (conv.in_channels, conv.out_channels) == (2, 3)
    same = dict(shapes, s_feats=[torch.Size([1, 3, 4, 4])])
    loss = FRSFeatureLoss(adapter='auto')
    loss.setup(same, name='x')
    assert 's_feats' not in loss.adapters
