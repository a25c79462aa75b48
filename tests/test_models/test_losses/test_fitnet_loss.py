"""FitNet hint loss (Romero et al. 2015, Eq. 3) on FPN levels.

Expected values are written literally (worked out in the comments) or recomputed
with explicit loops here, never with the loss under test.
"""
import pytest
import torch

from mmkd_det.models.losses.fitnet_loss import FitNetLoss
from mmkd_det.registry import MODELS


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def build(s_feats, t_feats, **cfg):
    loss = MODELS.build(dict(type='FitNetLoss', **cfg))
    loss.setup(shapes_of(s_feats, t_feats), 'loss_fitnet')
    return loss


def loop_mse(s, t):
    total, count = 0.0, 0
    for n in range(s.shape[0]):
        for c in range(s.shape[1]):
            for i in range(s.shape[2]):
                for j in range(s.shape[3]):
                    total += (float(s[n, c, i, j]) - float(t[n, c, i, j])) ** 2
                    count += 1
    return total / count


def test_hand_values_without_adapter():
    # level 0: (1, 1, 2, 2) student 0, teacher 2 -> mean 4
    # level 1: (1, 2, 1, 1) student (1, 3), teacher (-1, 3) -> (4 + 0) / 2 = 2
    s = [torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)]
    t = [torch.full((1, 1, 2, 2), 2.0), torch.tensor([-1.0, 3.0]).view(1, 2, 1, 1)]
    loss = build(s, t, adapter=None, loss_weight=0.5)
    # (4 + 2) x 0.5
    assert loss(s, t).item() == pytest.approx(3.0)


def test_default_adapter_is_always_a_1x1_conv_and_value_matches_loop():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 2, 3, generator=g)]
    t = [torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, 2, 3, generator=g)]
    loss = build(s, t)            # channels equal: FitNet still trains a regressor
    convs = loss.adapters['s_feats'].convs
    assert [c.kernel_size for c in convs] == [(1, 1), (1, 1)]
    expected = 0.0
    for lvl, (sf, tf) in enumerate(zip(s, t)):
        w, b = convs[lvl].weight.detach()[:, :, 0, 0], convs[lvl].bias.detach()
        regressed = torch.zeros_like(tf)
        for o in range(4):        # 1x1 conv written out channel by channel
            regressed[:, o] = b[o] + sum(w[o, i] * sf[:, i] for i in range(4))
        expected += loop_mse(regressed, tf)
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


def test_channel_mismatch_auto_adapter():
    s = [torch.randn(1, 3, 2, 2)]
    t = [torch.randn(1, 5, 2, 2)]
    loss = build(s, t, adapter='auto')
    assert loss.adapters['s_feats'].convs[0].in_channels == 3
    assert loss.adapters['s_feats'].convs[0].out_channels == 5
    assert loss(s, t).dim() == 0


def test_gradients_reach_student_and_adapter_not_teacher():
    s = [torch.randn(2, 4, 3, 3, requires_grad=True)]
    t = [torch.randn(2, 4, 3, 3, requires_grad=True)]
    loss = build(s, t)
    loss(s, t).backward()
    assert s[0].grad is not None and s[0].grad.abs().sum() > 0
    assert all(p.grad is not None for p in loss.adapters.parameters())
    assert t[0].grad is None


def test_identical_features_give_zero():
    f = [torch.randn(1, 2, 4, 4), torch.randn(1, 2, 2, 2)]
    loss = build(f, f, adapter=None)
    assert loss(f, f).item() == 0.0


def test_errors():
    s = [torch.randn(1, 4, 2, 2)]
    t = [torch.randn(1, 8, 2, 2)]
    with pytest.raises(ValueError, match='channel mismatch'):
        build(s, t, adapter=None)
    with pytest.raises(ValueError, match='levels'):
        build(s, t + t)
    with pytest.raises(ValueError, match='spatial size'):
        build([torch.randn(1, 4, 2, 2)], [torch.randn(1, 4, 4, 4)])
    loss = build(s, t)
    with pytest.raises(ValueError, match='levels'):
        loss(s, t + t)
    same = build(t, t, adapter=None)
    with pytest.raises(ValueError, match='regressed student'):
        same([torch.randn(2, 8, 2, 2)], t)
    with pytest.raises(ValueError, match='adapter'):
        FitNetLoss(adapter='conv')
