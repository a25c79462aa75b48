"""Structured KD (Zhang & Ma, §III-C, Eqs. 1-6) against hand-made cases, plain-torch
re-implementations of the equations written here, and mmrazor's FBKD (authors' code).

Expected values never come from the functions under test: they are written literally
(worked out in the comments) or recomputed below with loops / plain torch ops.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmkd_det.models.losses.skd_loss import (PRESETS, SKDLoss, attention_mask,
                                             attention_masked_loss, channel_attention, l2_distance,
                                             spatial_attention)
from mmkd_det.registry import MODELS


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def assert_close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def build(s_feats, t_feats, **cfg):
    loss = MODELS.build(dict(type='SKDLoss', **cfg))
    loss.setup(shapes_of(s_feats, t_feats), 'skd')
    return loss


def randomise(module, seed, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g) * std)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def feats(seed, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for shape in shapes]


# -------------------------------------------------------- plain-torch reference
def ref_gs(a):  # Eq. 1, G^s
    return a.abs().sum(1) / a.shape[1]


def ref_gc(a):  # Eq. 1, G^c
    return a.abs().sum((2, 3)) / (a.shape[2] * a.shape[3])


def ref_mask(gs, gt, temp, mode):  # Eq. 2 (or the mean of two softmaxes)
    n, size = gs.shape[0], gs[0].numel()
    gs, gt = gs.reshape(n, -1), gt.reshape(n, -1)

    def sm(x):
        e = torch.exp(x - x.max(1, keepdim=True).values)
        return e / e.sum(1, keepdim=True)

    m = sm((gs + gt) / temp) if mode == 'softmax_of_sum' else (sm(gs / temp) + sm(gt / temp)) / 2
    return size * m


def ref_dist(a, b):
    return torch.sqrt(((a - b) ** 2).sum())


def _conv(module):
    return module[0] if isinstance(module, nn.Sequential) else module


def ref_nonlocal(block, x, stride, mode):
    """Non-local block (embedded Gaussian / dot product) with BN, written out."""
    n, c, h, w = x.shape

    def conv1x1(cm, inp):
        out = torch.einsum('oc,nchw->nohw', cm.conv.weight[:, :, 0, 0], inp)
        if cm.conv.bias is not None:  # conv_out has none (BN follows)
            out = out + cm.conv.bias[None, :, None, None]
        return out

    def pool(inp):
        if stride == 1:
            return inp
        ph, pw = -h % stride, -w % stride  # ceil mode: pad with -inf
        return F.max_pool2d(F.pad(inp, (0, pw, 0, ph), value=-math.inf), stride)

    theta = conv1x1(block.theta, x).flatten(2)                   # (n, ci, HW)
    phi = pool(conv1x1(_conv(block.phi), x)).flatten(2)           # (n, ci, K)
    g = pool(conv1x1(_conv(block.g), x)).flatten(2)               # (n, ci, K)
    f = torch.einsum('nci,nck->nik', theta, phi)
    if mode == 'embedded_gaussian':
        f = torch.softmax(f / math.sqrt(theta.shape[1]), -1)
    else:  # dot_product
        f = f / phi.shape[-1]
    y = torch.einsum('nik,nck->nci', f, g).reshape(n, -1, h, w)
    z = conv1x1(block.conv_out, y)
    bn = block.conv_out.bn
    if bn.training:
        mean = z.mean((0, 2, 3), keepdim=True)
        var = ((z - mean) ** 2).mean((0, 2, 3), keepdim=True)
    else:
        mean, var = bn.running_mean[None, :, None, None], bn.running_var[None, :, None, None]
    z = (z - mean) / torch.sqrt(var + bn.eps) * bn.weight[None, :, None, None] + \
        bn.bias[None, :, None, None]
    return x + z


def ref_terms(loss, s_feats, t_feats, temp, mask_mode='softmax_of_sum', at_mode='attention',
              am_channel_mask=True, attention=('spatial', 'channel'), nl_strides=None,
              nl_mode='embedded_gaussian', with_at=True):
    """Eqs. 1-5 with the loss's module weights, by plain tensor ops."""
    at = am = nld = 0.0
    for lvl, (s, tt) in enumerate(zip(s_feats, t_feats)):
        conv = loss.adapters['s_feats'].convs[lvl]
        adapted = torch.einsum('oc,nchw->nohw', conv.weight[:, :, 0, 0], s) + \
            conv.bias[None, :, None, None]
        m = torch.ones_like(tt)
        if 'spatial' in attention:
            m = m * ref_mask(ref_gs(s), ref_gs(tt), temp, mask_mode).view(
                tt.shape[0], 1, *tt.shape[2:])
        if 'channel' in attention and am_channel_mask:
            src = s if s.shape[1] == tt.shape[1] else adapted
            m = m * ref_mask(ref_gc(src), ref_gc(tt), temp, mask_mode)[:, :, None, None]
        am = am + torch.sqrt(((tt - adapted) ** 2 * m).sum())
        if with_at and 'spatial' in attention:
            gs = s.mean(1) if at_mode == 'pooled' else ref_gs(s)
            gt = tt.mean(1) if at_mode == 'pooled' else ref_gs(tt)
            sp = loss.spatial_adapters[lvl]
            gs = F.conv2d(gs[:, None], sp.weight, sp.bias, padding=1)
            at = at + ref_dist(gs, gt[:, None])
        if with_at and 'channel' in attention:
            cs = s.mean((2, 3)) if at_mode == 'pooled' else ref_gc(s)
            ct = tt.mean((2, 3)) if at_mode == 'pooled' else ref_gc(tt)
            fc = loss.channel_adapters[lvl]
            at = at + ref_dist(cs @ fc.weight.T + fc.bias, ct)
        if nl_strides is not None:
            r_s = ref_nonlocal(loss.student_nonlocal[lvl], s, nl_strides[lvl], nl_mode)
            ad = loss.nonlocal_adapters[lvl]
            r_s = torch.einsum('oc,nchw->nohw', ad.weight[:, :, 0, 0], r_s) + \
                ad.bias[None, :, None, None]
            r_t = ref_nonlocal(loss.teacher_nonlocal[lvl], tt, nl_strides[lvl], nl_mode)
            nld = nld + ref_dist(r_s, r_t)
    return dict(at=at, am=am, nld=nld)


def set_identity_adapters(loss):
    with torch.no_grad():
        for sp in loss.spatial_adapters:
            sp.weight.zero_()
            sp.weight[0, 0, 1, 1] = 1.0
            sp.bias.zero_()
        for fc in loss.channel_adapters:
            fc.weight.copy_(torch.eye(*fc.weight.shape))
            fc.bias.zero_()
        for ad in loss.nonlocal_adapters:
            ad.weight.copy_(torch.eye(*ad.weight.shape[:2])[:, :, None, None])
            ad.bias.zero_()


# ------------------------------------------------------------------- Eq. 1
def test_eq1_attention_hand_case():
    # one image, 2 channels, 2x2; signs mixed
    a = torch.tensor([[[[1., -2.], [3., -4.]],
                       [[-5., 6.], [-7., 8.]]]])
    # G^s: (|1|+|-5|)/2 = 3, (2+6)/2 = 4, (3+7)/2 = 5, (4+8)/2 = 6
    assert_close(spatial_attention(a), torch.tensor([[[3., 4.], [5., 6.]]]))
    # G^c: (1+2+3+4)/4 = 2.5, (5+6+7+8)/4 = 6.5
    assert_close(channel_attention(a), t([2.5, 6.5]))
    # without abs the spatial means would be (-2, 2, -2, 2) and channel (-0.5, 0.5)
    assert not torch.allclose(spatial_attention(a), a.mean(1))
    assert not torch.allclose(channel_attention(a), a.mean((2, 3)))


# ------------------------------------------------------------------- Eq. 2
@pytest.mark.parametrize('mode', ['softmax_of_sum', 'mean_of_softmax'])
def test_eq2_masks_sum_to_size(mode):
    gs, gt = [x.abs() for x in feats(0, (3, 4, 5), (3, 4, 5))]
    m = attention_mask(gs, gt, 0.5, mode)
    assert m.shape == (3, 4, 5)
    assert_close(m.sum((1, 2)), torch.full((3,), 20.))
    assert_close(m, ref_mask(gs, gt, 0.5, mode).view(3, 4, 5))
    cs, ct = [x.abs() for x in feats(1, (3, 6), (3, 6))]
    mc = attention_mask(cs, ct, 0.5, mode)
    assert mc.shape == (3, 6)
    assert_close(mc.sum(1), torch.full((3,), 6.))
    assert (m > 0).all() and (mc > 0).all()


def test_eq2_hand_case_softmax_of_sum_vs_mean_of_softmax():
    # one image, 1x2 map; G^s(A^S) = (0, ln 2), G^s(A^T) = (0, ln 3), T = 1
    gs = torch.tensor([[[0., math.log(2.)]]])
    gt = torch.tensor([[[0., math.log(3.)]]])
    # softmax_of_sum: logits (0, ln 6) -> (1/7, 6/7), times HW = 2
    assert_close(attention_mask(gs, gt, 1.0, 'softmax_of_sum'),
                 torch.tensor([[[2 / 7, 12 / 7]]]))
    # mean_of_softmax: ((1/3, 2/3) + (1/4, 3/4)) / 2 = (7/24, 17/24), times 2
    assert_close(attention_mask(gs, gt, 1.0, 'mean_of_softmax'),
                 torch.tensor([[[7 / 12, 17 / 12]]]))
    # T = 0.5: logits (0, 2 ln 6) = (0, ln 36) -> 2 * (1/37, 36/37)
    assert_close(attention_mask(gs, gt, 0.5, 'softmax_of_sum'),
                 torch.tensor([[[2 / 37, 72 / 37]]]))
    # channel form, (N, C) = (1, 2): same numbers
    assert_close(attention_mask(gs[:, 0], gt[:, 0], 1.0, 'softmax_of_sum'), t([2 / 7, 12 / 7]))
    with pytest.raises(ValueError, match='mask_mode'):
        attention_mask(gs, gt, 1.0, 'product')


@pytest.mark.parametrize('mode', ['softmax_of_sum', 'mean_of_softmax'])
def test_eq2_lower_temperature_is_sharper(mode):
    gs, gt = [x.abs() for x in feats(2, (2, 3, 3), (2, 3, 3))]
    sharp = attention_mask(gs, gt, 0.1, mode)
    soft = attention_mask(gs, gt, 1.0, mode)
    assert (sharp.flatten(1).max(1).values > soft.flatten(1).max(1).values).all()
    assert (sharp.flatten(1).min(1).values < soft.flatten(1).min(1).values).all()


def test_eq2_masks_are_detached():
    gs, gt = feats(3, (2, 3, 3), (2, 3, 3))
    gs.requires_grad_()
    gt.requires_grad_()
    for mode in ('softmax_of_sum', 'mean_of_softmax'):
        m = attention_mask(gs, gt, 0.5, mode)
        assert not m.requires_grad and m.grad_fn is None


# ------------------------------------------------------------------- Eq. 4
def test_eq4_ones_masks_is_frobenius_norm():
    s, tt = feats(4, (2, 3, 2, 2), (2, 3, 2, 2))
    expected = torch.sqrt(((tt - s) ** 2).sum())
    assert_close(attention_masked_loss(s, tt, None, None), expected)
    assert_close(attention_masked_loss(s, tt, torch.ones(2, 2, 2), torch.ones(2, 3)), expected)


def test_eq4_hand_case():
    # 1 image, 1 channel, 1x2: differences (2, 1), M^s = (0.5, 1.5), M^c = 2
    # sqrt(4 * 0.5 * 2 + 1 * 1.5 * 2) = sqrt(7)
    s = torch.zeros(1, 1, 1, 2)
    tt = torch.tensor([2., 1.]).view(1, 1, 1, 2)
    out = attention_masked_loss(s, tt, torch.tensor([[[0.5, 1.5]]]), t([2.]))
    assert out.item() == pytest.approx(math.sqrt(7.0))


def test_eq4_matches_loop_and_root_once_over_batch():
    n, c, h, w = 2, 3, 2, 3
    s, tt = feats(5, (n, c, h, w), (n, c, h, w))
    ms = torch.rand(n, h, w, generator=torch.Generator().manual_seed(0)) * 2
    mc = torch.rand(n, c, generator=torch.Generator().manual_seed(1)) * 2
    per_image = [0.0] * n
    for i_n in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    per_image[i_n] += (float(tt[i_n, k, i, j]) - float(s[i_n, k, i, j])) ** 2 \
                        * float(ms[i_n, i, j]) * float(mc[i_n, k])
    out = attention_masked_loss(s, tt, ms, mc).item()
    assert out == pytest.approx(math.sqrt(sum(per_image)), rel=1e-5)
    # a per-image root (then summed) would be a different number
    assert out != pytest.approx(sum(math.sqrt(v) for v in per_image), rel=1e-3)
    # gradient goes to the student only
    s.requires_grad_()
    tt.requires_grad_()
    attention_masked_loss(s, tt, ms, mc).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert tt.grad is None


def test_zero_distance_has_finite_gradient():
    a = torch.ones(2, 3, 2, 2, requires_grad=True)
    b = torch.ones(2, 3, 2, 2)
    (l2_distance(a, b) + attention_masked_loss(a, b, None, None)).backward()
    assert torch.isfinite(a.grad).all()


# ------------------------------------------------------------------- Eq. 3
@pytest.mark.parametrize('at_mode', ['attention', 'pooled'])
def test_eq3_identity_adapters(at_mode):
    s_feats = feats(6, (2, 3, 4, 4), (2, 3, 2, 2))
    t_feats = feats(7, (2, 3, 4, 4), (2, 3, 2, 2))
    loss = build(s_feats, t_feats, alpha=1.0, beta=1.0, gamma=0.0, at_mode=at_mode)
    set_identity_adapters(loss)
    expected = 0.0
    for s, tt in zip(s_feats, t_feats):
        if at_mode == 'attention':
            sp_s, sp_t, ch_s, ch_t = ref_gs(s), ref_gs(tt), ref_gc(s), ref_gc(tt)
        else:  # plain means, no abs
            sp_s, sp_t = s.sum(1) / 3, tt.sum(1) / 3
            ch_s, ch_t = s.sum((2, 3)) / s[0, 0].numel(), tt.sum((2, 3)) / tt[0, 0].numel()
        expected += math.sqrt(float(((sp_s - sp_t) ** 2).sum())) + \
            math.sqrt(float(((ch_s - ch_t) ** 2).sum()))
    assert loss.terms(s_feats, t_feats)['at'].item() == pytest.approx(expected, rel=1e-5)


def test_eq3_modes_differ():
    s_feats, t_feats = feats(8, (2, 3, 4, 4)), feats(9, (2, 3, 4, 4))
    vals = []
    for at_mode in ('attention', 'pooled'):
        loss = build(s_feats, t_feats, alpha=1.0, beta=1.0, gamma=0.0, at_mode=at_mode)
        set_identity_adapters(loss)
        vals.append(loss.terms(s_feats, t_feats)['at'].item())
    assert vals[0] != pytest.approx(vals[1], rel=1e-3)


# ---------------------------------------------------------- SKDLoss, Eqs. 1-6
SHAPES = ((2, 4, 4, 4), (2, 4, 2, 2))


@pytest.mark.parametrize('mask_mode,at_mode,am_channel_mask,nl_mode', [
    ('softmax_of_sum', 'attention', True, 'embedded_gaussian'),
    ('mean_of_softmax', 'pooled', False, 'dot_product'),
])
def test_terms_match_reference(mask_mode, at_mode, am_channel_mask, nl_mode):
    s_feats, t_feats = feats(10, *SHAPES), feats(11, *SHAPES)
    loss = build(s_feats, t_feats, alpha=1.0, beta=1.0, gamma=1.0, temperature=0.5,
                 mask_mode=mask_mode, at_mode=at_mode, am_channel_mask=am_channel_mask,
                 nonlocal_mode=nl_mode, nonlocal_cfg=dict(sub_sample=(2, 1), reduction=2))
    randomise(loss, 0)  # non-local output BN too: the blocks are no longer the identity
    out = loss.terms(s_feats, t_feats)
    ref = ref_terms(loss, s_feats, t_feats, 0.5, mask_mode, at_mode, am_channel_mask,
                    nl_strides=(2, 1), nl_mode=nl_mode)
    assert set(out) == {'at', 'am', 'nld'}
    for k in ('at', 'am', 'nld'):
        assert out[k].item() == pytest.approx(float(ref[k]), rel=1e-5), k


def test_forward_weights_scale_terms():
    s_feats, t_feats = feats(12, *SHAPES), feats(13, *SHAPES)
    cfg = dict(temperature=0.5, nonlocal_cfg=dict(sub_sample=2))
    loss = build(s_feats, t_feats, alpha=2.0, beta=3.0, gamma=5.0, loss_weight=0.5, **cfg)
    randomise(loss, 1)
    ref = ref_terms(loss, s_feats, t_feats, 0.5, nl_strides=(2, 2))
    out = loss(s_feats, t_feats)
    assert set(out) == {'loss_at', 'loss_am', 'loss_nld'}
    assert out['loss_at'].item() == pytest.approx(0.5 * 2.0 * float(ref['at']), rel=1e-5)
    assert out['loss_am'].item() == pytest.approx(0.5 * 3.0 * float(ref['am']), rel=1e-5)
    assert out['loss_nld'].item() == pytest.approx(0.5 * 5.0 * float(ref['nld']), rel=1e-5)


@pytest.mark.parametrize('off', ['alpha', 'beta', 'gamma'])
def test_zero_weight_term_absent_and_not_built(off):
    s_feats, t_feats = feats(14, *SHAPES), feats(15, *SHAPES)
    weights = dict(alpha=1.0, beta=1.0, gamma=1.0)
    weights[off] = 0.0
    loss = build(s_feats, t_feats, **weights)
    out = loss(s_feats, t_feats)
    key = dict(alpha='loss_at', beta='loss_am', gamma='loss_nld')[off]
    assert key not in out and len(out) == 2
    names = [n for n, _ in loss.named_parameters()]
    built = dict(alpha=any(n.startswith(('spatial_adapters', 'channel_adapters')) for n in names),
                 beta=any(n.startswith('adapters') for n in names),
                 gamma=any('nonlocal' in n for n in names))
    assert built == {k: k != off for k in built}
    if off == 'gamma':
        assert len(loss.student_nonlocal) == len(loss.teacher_nonlocal) == 0
        assert len(loss.nonlocal_adapters) == 0


def test_spatial_attention_only():
    s_feats, t_feats = feats(16, *SHAPES), feats(17, *SHAPES)
    loss = build(s_feats, t_feats, alpha=1.0, beta=1.0, gamma=0.0, temperature=0.5,
                 attention=('spatial',))
    assert len(loss.channel_adapters) == 0 and len(loss.spatial_adapters) == 2
    m_s, m_c = loss.masks(s_feats[0], t_feats[0])
    assert m_c is None and m_s.shape == (2, 4, 4)
    randomise(loss, 2)
    ref = ref_terms(loss, s_feats, t_feats, 0.5, attention=('spatial',))
    out = loss.terms(s_feats, t_feats)
    assert out['am'].item() == pytest.approx(float(ref['am']), rel=1e-5)
    assert out['at'].item() == pytest.approx(float(ref['at']), rel=1e-5)
    # with both attentions the numbers differ (the channel mask / term is there)
    ref_both = ref_terms(loss, s_feats, t_feats, 0.5, with_at=False)
    assert float(ref_both['am']) != pytest.approx(float(ref['am']), rel=1e-3)


def test_presets_and_overrides():
    expected = dict(paper_two_stage=(7e-5, 4e-3, 7e-5, 0.1),
                    paper_one_stage=(4e-4, 2e-2, 4e-4, 0.5))
    for name, (a, b, g, temp) in expected.items():
        loss = SKDLoss(preset=name)
        assert (loss.alpha, loss.beta, loss.gamma, loss.temperature) == \
            pytest.approx((a, b, g, temp), rel=1e-12)
        assert loss.mask_mode == 'softmax_of_sum' and loss.at_mode == 'attention'
        assert loss.am_channel_mask is True
    default = SKDLoss()
    assert (default.alpha, default.beta, default.gamma, default.temperature) == \
        pytest.approx((7e-5, 4e-3, 7e-5, 0.1), rel=1e-12)
    code = SKDLoss(preset='authors_code_two_stage')
    assert (code.mask_mode, code.at_mode, code.am_channel_mask, code.nonlocal_mode) == \
        ('mean_of_softmax', 'pooled', False, 'dot_product')
    over = SKDLoss(preset='paper_one_stage', beta=1.0, temperature=2.0, mask_mode='mean_of_softmax',
                   am_channel_mask=False)
    assert (over.alpha, over.beta, over.gamma, over.temperature) == \
        pytest.approx((4e-4, 1.0, 4e-4, 2.0), rel=1e-12)
    assert over.mask_mode == 'mean_of_softmax' and over.am_channel_mask is False
    # an explicit 0 overrides a preset's non-zero weight
    assert SKDLoss(preset='paper_one_stage', gamma=0.0).gamma == 0.0
    # the preset table itself is not mutated by overrides
    assert PRESETS['paper_one_stage']['beta'] == 2e-2


@pytest.mark.parametrize('cfg,exc,match', [
    (dict(preset='paper'), ValueError, 'preset must be one of'),
    (dict(mask_mode='sum'), ValueError, 'mask_mode must be one of'),
    (dict(at_mode='abs'), ValueError, 'at_mode must be one of'),
    (dict(attention=('spatial', 'depth')), ValueError, 'attention must be'),
    (dict(attention=()), ValueError, 'attention must be'),
    (dict(temperature=0.0), ValueError, 'temperature must be > 0'),
    (dict(temperature=-0.5), ValueError, 'temperature must be > 0'),
    (dict(alpha=0.0, beta=0.0, gamma=0.0), ValueError, 'not all 0'),
    (dict(alpha=-1.0), ValueError, '>= 0'),
    (dict(nonlocal_cfg=dict(mode='dot_product')), KeyError, 'nonlocal_mode'),
    (dict(nonlocal_mode='bogus'), ValueError, 'nonlocal_mode must be one of'),
])
def test_invalid_options(cfg, exc, match):
    with pytest.raises(exc, match=match):
        SKDLoss(**cfg)


def test_forward_level_count_mismatch():
    s_feats, t_feats = feats(18, *SHAPES), feats(19, *SHAPES)
    loss = build(s_feats, t_feats, gamma=0.0)
    with pytest.raises(ValueError, match='levels'):
        loss(s_feats, t_feats[:1])


def test_channel_mismatch_and_per_level_nonlocal_cfg():
    shapes_s = [(2, 3, 4, 4), (2, 3, 2, 2), (2, 3, 2, 2)]
    shapes_t = [(2, 5, 4, 4), (2, 5, 2, 2), (2, 5, 2, 2)]
    s_feats = [f.requires_grad_() for f in feats(20, *shapes_s)]
    t_feats = feats(21, *shapes_t)
    loss = build(s_feats, t_feats, alpha=1.0, beta=1.0, gamma=1.0,
                 nonlocal_cfg=dict(sub_sample=(4, 2), reduction=(1, 2)))
    # the last entry repeats: strides 4, 2, 2; reductions 1, 2, 2
    assert [b.stride for b in loss.student_nonlocal] == [4, 2, 2]
    assert [b.stride for b in loss.teacher_nonlocal] == [4, 2, 2]
    assert [b.inter_channels for b in loss.student_nonlocal] == [3, 1, 1]
    assert [b.inter_channels for b in loss.teacher_nonlocal] == [5, 2, 2]
    assert [tuple(fc.weight.shape) for fc in loss.channel_adapters] == [(5, 3)] * 3
    assert [tuple(c.weight.shape) for c in loss.nonlocal_adapters] == [(5, 3, 1, 1)] * 3
    # the channel mask comes from the adapted student
    adapted = loss.adapters['s_feats'](s_feats)
    m_s, m_c = loss.masks(s_feats[0], t_feats[0], adapted[0])
    assert m_c.shape == (2, 5) and m_s.shape == (2, 4, 4)
    assert_close(m_c, ref_mask(ref_gc(adapted[0].detach()), ref_gc(t_feats[0]), loss.temperature,
                               'softmax_of_sum'))
    with pytest.raises(ValueError, match='adapted student'):
        loss.masks(s_feats[0], t_feats[0])
    out = loss(s_feats, t_feats)
    total = sum(out.values())
    assert set(out) == {'loss_at', 'loss_am', 'loss_nld'}
    assert torch.isfinite(total)
    total.backward()
    for s in s_feats:
        assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_nld_at_initialisation_is_feature_distance():
    s_feats, t_feats = feats(22, *SHAPES), feats(23, *SHAPES)
    loss = build(s_feats, t_feats, alpha=0.0, beta=0.0, gamma=1.0,
                 nonlocal_cfg=dict(sub_sample=2))
    set_identity_adapters(loss)
    expected = sum(math.sqrt(float(((s - tt) ** 2).sum())) for s, tt in zip(s_feats, t_feats))
    out = loss.terms(s_feats, t_feats)
    assert set(out) == {'nld'}
    assert out['nld'].item() == pytest.approx(expected, rel=1e-5)
    # once the output BN is non-zero the blocks are no longer the identity
    with torch.no_grad():
        for block in loss.student_nonlocal:
            block.conv_out.bn.weight.fill_(1.0)
    assert loss.terms(s_feats, t_feats)['nld'].item() != pytest.approx(expected, rel=1e-3)


def test_visual_maps():
    s_feats, t_feats = feats(24, *SHAPES), feats(25, *SHAPES)
    loss = build(s_feats, t_feats, temperature=0.1, vis_temperatures=(0.25, 0.1, 0.5))
    maps = loss.visual_maps(s_feats, t_feats)
    # the loss's T first, then the extra ones, T=0.1 not repeated
    temps = [0.1, 0.25, 0.5]
    assert len(maps) == 3
    for (name, levels), temp in zip(maps.items(), temps):
        assert name.endswith(f'T={temp:g}')
        assert len(levels) == 2
        for m, s, tt in zip(levels, s_feats, t_feats):
            hw = tt.shape[2] * tt.shape[3]
            assert m.shape == (2, *tt.shape[2:])
            assert_close(m.sum((1, 2)), torch.full((2,), float(hw)))
            assert_close(m, ref_mask(ref_gs(s), ref_gs(tt), temp, 'softmax_of_sum').view(m.shape))
    channel_only = build(s_feats, t_feats, attention=('channel',))
    assert channel_only.visual_maps(s_feats, t_feats) == {}


# -------------------------------------------------- parity with mmrazor's FBKD
def _mmrazor():
    try:
        from mmkd_det.compat import import_mmrazor_models
        import_mmrazor_models()
        from mmrazor.models.architectures.connectors import (FBKDStudentConnector,
                                                             FBKDTeacherConnector)
        from mmrazor.models.losses import FBKDLoss
    except ImportError as err:
        pytest.skip(f'mmrazor not importable: {err}')
    return FBKDStudentConnector, FBKDTeacherConnector, FBKDLoss


def _copy(dst, src):
    dst_sd, src_sd = dst.state_dict(), src.state_dict()
    assert len(dst_sd) == len(src_sd)
    with torch.no_grad():
        for (kd, vd), (ks, vs) in zip(dst_sd.items(), src_sd.items()):
            assert vd.shape == vs.shape, (kd, ks)
            vd.copy_(vs)


def _ours_from_mmrazor(stu, tea, train, **cfg):
    loss = SKDLoss(preset='authors_code_two_stage', **cfg)
    shape = torch.Size((2, 8, 8, 8))
    loss.setup(dict(s_feats=[shape], t_feats=[shape]), 'fbkd')
    _copy(loss.adapters['s_feats'].convs[0], stu.adaptation_layers)
    _copy(loss.channel_adapters[0], stu.channel_wise_adaptation)
    _copy(loss.spatial_adapters[0], stu.spatial_wise_adaptation)
    _copy(loss.student_nonlocal[0], stu.student_non_local)
    _copy(loss.nonlocal_adapters[0], stu.non_local_adaptation)
    _copy(loss.teacher_nonlocal[0], tea.teacher_non_local)
    loss.train(train)
    return loss


@pytest.mark.parametrize('train', [True, False])
def test_parity_with_mmrazor_fbkd(train):
    Stu, Tea, FBKDLoss = _mmrazor()
    torch.manual_seed(0)
    cfg = dict(in_channels=8, reduction=2, mode='dot_product', sub_sample=True,
               maxpool_stride=2, spatial_T=0.5, channel_T=0.5)
    stu, tea = Stu(**cfg), Tea(**cfg)
    randomise(stu, 3)
    randomise(tea, 4)
    assert stu.student_non_local.conv_out.bn.weight.abs().sum() > 0
    stu.train(train)
    tea.train(train)
    s, tt = feats(26, (2, 8, 8, 8), (2, 8, 8, 8))
    expected = FBKDLoss()(stu(s), tea(tt)).item()

    ours = _ours_from_mmrazor(stu, tea, train, nonlocal_cfg=dict(sub_sample=4, reduction=2))
    got = sum(ours([s], [tt]).values()).item()
    assert got == pytest.approx(expected, rel=1e-6)

    # documented differences: these must not match
    masked = _ours_from_mmrazor(stu, tea, train, am_channel_mask=True,
                                nonlocal_cfg=dict(sub_sample=4, reduction=2))
    assert sum(masked([s], [tt]).values()).item() != pytest.approx(expected, rel=1e-4)
    single = _ours_from_mmrazor(stu, tea, train, nonlocal_cfg=dict(sub_sample=2, reduction=2))
    assert sum(single([s], [tt]).values()).item() != pytest.approx(expected, rel=1e-4)


def test_zero_distance_in_full_loss_has_finite_gradient():
    """A student equal to its teacher (weight inheritance) gets zero, not NaN, gradients."""
    s_feats = feats(30, *SHAPES)
    t_feats = [f.clone() for f in s_feats]
    s_feats = [f.clone().requires_grad_() for f in s_feats]
    loss = build(s_feats, t_feats, alpha=0.0, gamma=0.0)
    with torch.no_grad():
        for conv in loss.adapters['s_feats'].convs:  # the L_AM 1x1 adapter
            conv.weight.copy_(torch.eye(conv.weight.shape[0])[:, :, None, None])
            conv.bias.zero_()
    out = loss(s_feats, t_feats)
    assert out['loss_am'].item() == 0.0
    out['loss_am'].backward()
    assert all(torch.isfinite(f.grad).all() and f.grad.abs().sum() == 0 for f in s_feats)
