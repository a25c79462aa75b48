"""ReviewKD (Chen et al., CVPR 2021): the hierarchical context loss against hand-worked
pooled MSEs and block means written here, ABF fusion with weights set in the test
against a manual computation, the review order, and a tiny Distiller.

Expected values never come from the code under test.
"""
import math

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.logging import MessageHub

from mmkd_det.models.losses.review_kd_loss import ABF, ReviewKDLoss, hcl_level_loss
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg

BN_SCALE = 1 / math.sqrt(1 + 1e-5)  # an eval-mode BatchNorm with fresh running stats


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def block_mean(x, k):
    """k x k block means of (N, C, H, W) with H, W divisible by k (explicit loops)."""
    n, c, h, w = x.shape
    bh, bw = h // k, w // k
    out = torch.zeros(n, c, k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(k):
            out[:, :, i, j] = x[:, :, i * bh:(i + 1) * bh, j * bw:(j + 1) * bw].double().mean(
                dim=(2, 3))
    return out


def mse(a, b):
    return float(((a.double() - b.double())**2).mean())


# --------------------------------------------------------------------- HCL
def test_hcl_hand_value_skips_pool_size_not_below_height():
    # s = 0, t = [[1,3,0,0],[3,1,0,0],[0,0,2,2],[0,0,2,2]] (H = 4: size 4 skipped)
    # full MSE = (1+9+9+1 + 4*4)/16 = 2.25; 2x2 block means (2, 0; 0, 2): MSE 2;
    # 1x1 mean 1: MSE 1. weights 1, 1/2 (size 2), 1/4 (size 1):
    # (2.25 + 2/2 + 1/4) / 1.75 = 2.0
    t = torch.tensor([[1., 3, 0, 0], [3, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]).view(1, 1, 4, 4)
    s = torch.zeros_like(t)
    assert hcl_level_loss(s, t).item() == pytest.approx(2.0, rel=1e-6)
    # H = 1: every pooled size is >= H, only the full MSE
    assert hcl_level_loss(torch.zeros(1, 1, 1, 3),
                          torch.tensor([[[[1., 2, 2]]]])).item() == pytest.approx(3.0)


def test_hcl_matches_block_means_with_all_three_sizes():
    s, t = rand(0, 2, 3, 8, 8), rand(1, 2, 3, 8, 8)
    # H = 8 > 4: sizes 4, 2, 1 with weights 1/2, 1/4, 1/8; total 1.875
    expected = (mse(s, t) + mse(block_mean(s, 4), block_mean(t, 4)) / 2 +
                mse(block_mean(s, 2), block_mean(t, 2)) / 4 +
                mse(block_mean(s, 1), block_mean(t, 1)) / 8) / 1.875
    assert hcl_level_loss(s, t).item() == pytest.approx(expected, rel=1e-5)
    # custom sizes: (2,) only -> (MSE + MSE_2 / 2) / 1.5
    expected = (mse(s, t) + mse(block_mean(s, 2), block_mean(t, 2)) / 2) / 1.5
    assert hcl_level_loss(s, t, (2, )).item() == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------- ABF
def set_abf(abf):
    """conv_in: identity on 2 channels; conv_out: 3x3 kernel with centre weights
    out[o] = in[o] (identity); attention logits: a = x_0, b = up(res)_1 + 0.5."""
    with torch.no_grad():
        abf.conv_in[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        abf.conv_out[0].weight.zero_()
        abf.conv_out[0].weight[0, 0, 1, 1] = 1.0
        abf.conv_out[0].weight[1, 1, 1, 1] = 1.0
        if abf.att_conv is not None:
            abf.att_conv.weight.zero_()
            abf.att_conv.weight[0, 0] = 1.0   # channel 0 of [x; res]: x_0
            abf.att_conv.weight[1, 3] = 1.0   # channel 3: res_1
            abf.att_conv.bias.copy_(torch.tensor([0.0, 0.5]))
    abf.eval()


@pytest.mark.parametrize('attention', ['sigmoid', 'softmax'])
def test_abf_fusion_equals_manual_computation(attention):
    abf = ABF(2, 2, 2, fuse=True, attention=attention)
    set_abf(abf)
    feat, res = rand(2, 1, 2, 4, 4), rand(3, 1, 2, 2, 2)
    x = feat * BN_SCALE                                              # 1x1 identity + BN
    up = res.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest 2x
    la, lb = x[:, 0:1], up[:, 1:2] + 0.5
    if attention == 'sigmoid':
        a, b = 1 / (1 + torch.exp(-la)), 1 / (1 + torch.exp(-lb))
    else:
        a = torch.exp(la) / (torch.exp(la) + torch.exp(lb))
        b = 1 - a
    fused = a * x + b * up
    out, z = abf(feat, res)
    torch.testing.assert_close(z, fused, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, fused * BN_SCALE, rtol=1e-5, atol=1e-6)
    maps = abf.attention_maps(x, up)
    if attention == 'softmax':  # the two weights sum to 1 per position
        torch.testing.assert_close(maps.sum(1), torch.ones(1, 4, 4))
    else:  # the authors' sigmoids are independent gates in (0, 1)
        assert not torch.allclose(maps.sum(1), torch.ones(1, 4, 4))
        assert maps.min() > 0 and maps.max() < 1


def test_abf_structure():
    abf = ABF(3, 5, 7, fuse=True)
    assert abf.conv_in[0].kernel_size == (1, 1) and abf.conv_in[0].bias is None
    assert isinstance(abf.conv_in[1], torch.nn.BatchNorm2d) and abf.conv_in[1].num_features == 5
    assert abf.conv_out[0].kernel_size == (3, 3) and abf.conv_out[0].out_channels == 7
    assert abf.att_conv.in_channels == 10 and abf.att_conv.out_channels == 2
    assert ABF(3, 5, 7, fuse=False).att_conv is None
    with pytest.raises(ValueError, match='residual'):
        abf(torch.zeros(1, 3, 2, 2))


# ------------------------------------------------------------ review order
def three_levels(seed, ch):
    return [rand(seed + i, 2, ch, 8 >> i, 8 >> i) for i in range(3)]


def build(s, t, **cfg):
    loss = MODELS.build(dict(type='ReviewKDLoss', **cfg))
    loss.setup(shapes_of(s, t), 'loss_reviewkd')
    return loss


def test_setup_builds_abfs_deepest_without_fusion():
    s, t = three_levels(0, 4), three_levels(10, 6)
    loss = build(s, t)
    assert len(loss.abfs) == 3
    assert [a.att_conv is None for a in loss.abfs] == [False, False, True]
    assert all(a.conv_in[0].in_channels == 4 and a.conv_in[0].out_channels == 6
               for a in loss.abfs)  # C_mid = teacher width
    assert all(a.conv_out[0].out_channels == 6 for a in loss.abfs)
    assert build(s, t, mid_channels=3).abfs[0].conv_in[0].out_channels == 3


def test_review_runs_deep_to_shallow_and_loss_is_hcl_sum():
    s, t = three_levels(20, 4), three_levels(30, 6)
    loss = build(s, t, loss_weight=2.0)
    loss.eval()  # BatchNorm running stats: outputs depend on one image only
    outs = [o.detach() for o in loss.review(s)]
    assert [o.shape for o in outs] == [f.shape for f in t]
    # changing the deepest student level changes every level's output ...
    s2 = [s[0], s[1], s[2] + 1.0]
    outs2 = loss.review(s2)
    assert all(not torch.allclose(a, b) for a, b in zip(outs, outs2))
    # ... changing the shallowest changes only itself
    s3 = [s[0] + 1.0, s[1], s[2]]
    outs3 = loss.review(s3)
    assert not torch.allclose(outs[0], outs3[0])
    assert torch.equal(outs[1], outs3[1]) and torch.equal(outs[2], outs3[2])
    # the loss is w * sum of HCL of each output (block means: H = 8, 4, 2)
    expected = 0.0
    for y, tt in zip(outs, t):
        h = y.shape[2]
        sizes = [k for k in (4, 2, 1) if k < h]
        num, den, wgt = mse(y, tt), 1.0, 1.0
        for k in sizes:
            wgt /= 2
            num += wgt * mse(block_mean(y, k), block_mean(tt, k))
            den += wgt
        expected += num / den
    assert loss(s, t).item() == pytest.approx(2.0 * expected, rel=1e-5)


def test_gradients_reach_student_and_abfs_not_teacher():
    s = [f.requires_grad_() for f in three_levels(40, 4)]
    t = [f.requires_grad_() for f in three_levels(50, 6)]
    loss = build(s, t)
    loss(s, t).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)
    assert all(p.grad is not None for p in loss.abfs.parameters())


def test_errors():
    s, t = three_levels(60, 4), three_levels(70, 6)
    with pytest.raises(RuntimeError, match='call setup'):
        ReviewKDLoss()(s, t)
    with pytest.raises(ValueError, match='adapter'):
        ReviewKDLoss(adapter='auto')
    with pytest.raises(ValueError, match='attention'):
        ReviewKDLoss(attention='relu')
    with pytest.raises(ValueError, match='same number of FPN levels'):
        build(s, t[:2])
    with pytest.raises(ValueError, match='resize_student'):
        build(s, [torch.zeros(2, 6, 4, 4)] + t[1:])
    mixed = t[:2] + [torch.zeros(2, 5, 2, 2)]
    with pytest.raises(ValueError, match='mid_channels'):
        build(s, mixed)
    loss = build(s, mixed, mid_channels=6)
    assert loss.abfs[2].conv_out[0].out_channels == 5
    # resize_student: the fused outputs are resized to the teacher's size
    big = [torch.zeros(2, 6, 16, 16)] + t[1:]
    assert torch.isfinite(build(s, big, resize_student=True)(s, big))


# ------------------------------------------------------------ in a Distiller
def test_distiller_builds_abfs_from_probe_and_trains_them(weights):
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(
        dict(
            type='Distiller',
            student=tiny_model_cfg('retina', 8),
            teacher=tiny_model_cfg('retina', 16),
            teacher_ckpt=ckpt,
            recorders=dict(fpn=dict(source='neck')),
            distill_losses=dict(loss_reviewkd=dict(type='ReviewKDLoss')),
            probe_size=64))
    loss = d.distill_losses['loss_reviewkd']
    assert len(loss.abfs) == 5  # RetinaNet's five FPN levels
    assert loss.abfs[0].conv_in[0].in_channels == 16 and loss.abfs[0].conv_out[0].out_channels == 32
    before = loss.abfs[0].conv_in[0].weight.clone()
    d.init_weights()  # the runner does this; the ABF weights must survive it
    assert torch.equal(loss.abfs[0].conv_in[0].weight, before)
    assert 'distill_losses.loss_reviewkd.abfs.0.conv_in.0.weight' in d.state_dict()
    assert any(p is loss.abfs[0].conv_in[0].weight for p in d.parameters())
    MessageHub.get_current_instance().update_info('iter', 0)
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 1],
                          num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    value = losses['distill.loss_reviewkd']
    assert torch.isfinite(value) and value > 0
    d.zero_grad()
    value.backward()
    assert all(p.grad is not None for p in loss.abfs.parameters())
    assert d.student.neck.fpn_convs[0].conv.weight.grad is not None
    assert all(p.grad is None for p in d.teacher.parameters())


def test_bf16_records_give_a_float32_loss():
    s, t = three_levels(80, 4), three_levels(90, 6)
    loss = build(s, t)
    loss.eval()
    expected = loss(s, t).item()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss([f.bfloat16() for f in s], [f.bfloat16() for f in t])
    assert out.dtype == torch.float32  # the ABF convs ran in fp32 (autocast off)
    assert out.item() == pytest.approx(expected, rel=2e-2)  # bf16 rounding of the inputs
