"""LogitKDLoss: Hinton's Eq. 2 on dense classification logits, checked by hand."""
import math

import pytest
import torch

from mmkd_det.models.losses import LogitKDLoss


def bernoulli_kl(pt, ps):
    return pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_sigmoid_hand_case_per_prior_sum_and_temperature():
    # 1 image, 2 priors x 2 classes at one location: channels (a0c0, a0c1, a1c0, a1c1)
    s = torch.tensor([1.0, -2.0, 0.5, 0.0]).view(1, 4, 1, 1)
    t = torch.tensor([2.0, -1.0, -0.5, 1.0]).view(1, 4, 1, 1)
    T = 2.0
    per_class = [bernoulli_kl(sig(tt / T), sig(ss / T)) * T * T
                 for ss, tt in zip(s.flatten().tolist(), t.flatten().tolist())]
    expected = (per_class[0] + per_class[1] + per_class[2] + per_class[3]) / 2  # 2 priors
    loss = LogitKDLoss(temperature=T, channels_per_prior=2)
    assert loss([s], [t]).item() == pytest.approx(expected, rel=1e-5)
    # default: a location's 4 logits as one prior -> sum over all 4 (twice the above)
    assert LogitKDLoss(temperature=T)([s], [t]).item() == pytest.approx(2 * expected, rel=1e-5)


def test_sigmoid_kd_value_and_gradient_match_the_log_sigmoid_formula():
    """The BCE form of the Bernoulli KL against its definition with four
    log-sigmoids, in float64: values and the student's gradient."""
    from mmkd_det.models.losses.logit_kd_loss import sigmoid_kd
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64) * 4).requires_grad_()
    t = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64) * 4
    for T in (1.0, 2.5):
        p = torch.sigmoid(t / T)
        ls = torch.nn.functional.logsigmoid
        ref = (p * (ls(t / T) - ls(s / T)) + (1 - p) * (ls(-t / T) - ls(-s / T))) * T * T
        ours = sigmoid_kd(s, t, T)
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
        w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        grad_ref, = torch.autograd.grad((ref * w).sum(), s)
        grad, = torch.autograd.grad((ours * w).sum(), s)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)
        # d KL / d s = (sigma(s/T) - sigma(t/T)) T per element
        torch.testing.assert_close(grad, w * (torch.sigmoid(s / T) - p) * T)


def test_softmax_hand_case_and_levels_sum():
    s = torch.tensor([0.0, 1.0, 2.0]).view(1, 3, 1, 1)
    t = torch.tensor([2.0, 0.0, 1.0]).view(1, 3, 1, 1)
    ps = [math.exp(v) for v in (0.0, 1.0, 2.0)]
    pt = [math.exp(v) for v in (2.0, 0.0, 1.0)]
    ps = [v / sum(ps) for v in ps]
    pt = [v / sum(pt) for v in pt]
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    loss = LogitKDLoss(mode='softmax', channels_per_prior=3, loss_weight=0.5)
    assert loss([s, s], [t, t]).item() == pytest.approx(0.5 * 2 * kl, rel=1e-5)


def test_zero_when_equal_gradients_to_student_only_and_errors():
    s = torch.randn(2, 6, 3, 3, requires_grad=True)
    t = s.detach().clone().requires_grad_()
    value = LogitKDLoss(temperature=3.0)([s], [t])
    assert abs(value.item()) < 1e-6
    other = LogitKDLoss()([s], [t + 1])
    other.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    with pytest.raises(ValueError, match='channels_per_prior'):
        LogitKDLoss(mode='softmax')
    with pytest.raises(ValueError, match='temperature'):
        LogitKDLoss(temperature=0)
    with pytest.raises(ValueError, match='multiple'):
        LogitKDLoss(channels_per_prior=4)([s], [t])
