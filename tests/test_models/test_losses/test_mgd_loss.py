"""MGD (Yang et al., ECCV 2022) against hand-worked cases, a plain-torch
re-computation written here (explicit convolutions, masks redrawn from the same
seed), and mmrazor 1.0.0's ``MGDConnector`` + ``MGDLoss``.

Expected values never come from the code under test. Masks: the loss draws
``torch.rand`` from the global CPU generator, one (N, 1, H, W) (or (N, C, 1, 1))
draw per level in level order, so re-seeding reproduces them.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmkd_det.models.losses.mgd_loss import MGDLoss, random_mask
from mmkd_det.registry import MODELS


def feats(seed, *shapes, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) * scale for shape in shapes]


def shapes_of(s_feats, t_feats):
    return dict(s_feats=[f.shape for f in s_feats], t_feats=[f.shape for f in t_feats])


def build(s_feats, t_feats, **cfg):
    loss = MODELS.build(dict(type='MGDLoss', **cfg))
    loss.setup(shapes_of(s_feats, t_feats), 'loss_mgd')
    return loss


def set_identity_generators(loss):
    """Both 3x3 convs = identity (centre tap), zero bias: G(x) = ReLU(x)."""
    with torch.no_grad():
        for gen in loss.generators:
            for conv in (gen[0], gen[2]):
                conv.weight.zero_()
                conv.bias.zero_()
                for c in range(conv.weight.shape[0]):
                    conv.weight[c, c, 1, 1] = 1.0


def reference(loss, s_feats, t_feats, seed, alpha, lam, on_channel=False):
    """alpha * sum_l sum (G_l(align_l(S_l) * M_l) - T_l)^2 / N with the module's
    parameters applied through F.conv2d and the masks redrawn here."""
    torch.manual_seed(seed)
    total = 0.0
    for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
        if 's_feats' in loss.adapters and isinstance(loss.adapters['s_feats'].convs[lvl],
                                                     nn.Conv2d):
            align = loss.adapters['s_feats'].convs[lvl]
            s = F.conv2d(s, align.weight, align.bias)
        n, c, h, w = s.shape
        u = torch.rand((n, c, 1, 1) if on_channel else (n, 1, h, w))
        mask = torch.where(u > 1 - lam, 0.0, 1.0)
        g1, g2 = loss.generators[lvl][0], loss.generators[lvl][2]
        x = F.conv2d(s * mask, g1.weight, g1.bias, padding=1).clamp(min=0)
        x = F.conv2d(x, g2.weight, g2.bias, padding=1)
        total += float(((x - t) ** 2).sum()) / n
    return alpha * total


# ------------------------------------------------------------------ masks
def test_random_mask_statistics_and_shapes():
    feat = torch.zeros(4, 3, 64, 64, dtype=torch.float64)
    torch.manual_seed(0)
    m = random_mask(feat, 0.65)
    assert m.shape == (4, 1, 64, 64) and m.dtype == torch.float64
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert abs((m == 0).double().mean().item() - 0.65) < 0.02  # ~lambda masked
    torch.manual_seed(0)
    u = torch.rand(4, 1, 64, 64)
    assert torch.equal(m, (u <= 0.35).double())  # 0 where U > 1 - lambda
    mc = random_mask(torch.zeros(256, 8, 5, 5), 0.45, mask_on_channel=True)
    assert mc.shape == (256, 8, 1, 1)
    assert abs((mc == 0).float().mean().item() - 0.45) < 0.04
    torch.manual_seed(1)
    a = random_mask(feat, 0.5)
    assert not torch.equal(a, random_mask(feat, 0.5))  # fresh draw each call


# ------------------------------------------------------------- hand-worked
def test_hand_case_constant_generator():
    # generator output = bias of its last conv (all weights 0): G = 0.5 everywhere,
    # T = 1: every one of N C H W = 2*3*2*2 values contributes 0.25, divided by N = 2:
    # alpha * 24 * 0.25 / 2 = 3 alpha, whatever the mask
    s, t = [torch.randn(2, 3, 2, 2)], [torch.ones(2, 3, 2, 2)]
    loss = build(s, t, alpha_mgd=1e-3)
    with torch.no_grad():
        for p in loss.generators.parameters():
            p.zero_()
        loss.generators[0][2].bias.fill_(0.5)
    assert loss(s, t).item() == pytest.approx(3e-3, rel=1e-6)
    assert MGDLoss.__init__.__defaults__[:2] == (2e-5, 0.65)


@pytest.mark.parametrize('lam', [0.0, 1.0])
def test_hand_case_no_mask_and_full_mask(lam):
    # identity generator, positive S, T = S: G(S * M) - T = -S where masked, else 0.
    # lambda 0: nothing masked -> 0; lambda 1: everything masked -> alpha sum S^2 / N
    s = [torch.rand(2, 3, 4, 4) + 0.1]
    t = [s[0].clone()]
    loss = build(s, t, alpha_mgd=1.0, lambda_mgd=lam)
    set_identity_generators(loss)
    expected = 0.0 if lam == 0.0 else float((s[0] ** 2).sum()) / 2
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_spatial_mask_drops_whole_positions():
    # identity generator, T = S > 0: loss = alpha/N sum over dropped (n, h, w) of
    # sum_c S^2; with all channels of S equal to 1 that is C x (number of dropped positions)
    s = [torch.ones(2, 3, 5, 5)]
    loss = build(s, [s[0].clone()], alpha_mgd=1.0, lambda_mgd=0.5)
    set_identity_generators(loss)
    torch.manual_seed(3)
    value = loss(s, [s[0].clone()]).item()
    torch.manual_seed(3)
    dropped = int((torch.rand(2, 1, 5, 5) > 0.5).sum())
    assert 0 < dropped < 50 and value == pytest.approx(3 * dropped / 2, rel=1e-6)


@pytest.mark.parametrize('on_channel', [False, True])
def test_multi_level_matches_reference(on_channel):
    s = feats(1, (2, 4, 6, 5), (2, 6, 3, 3))   # level 0 needs an align conv, level 1 not
    t = feats(2, (2, 6, 6, 5), (2, 6, 3, 3), scale=2.0)
    loss = build(s, t, alpha_mgd=1e-2, lambda_mgd=0.45, mask_on_channel=on_channel,
                 loss_weight=3.0)
    convs = loss.adapters['s_feats'].convs
    assert isinstance(convs[0], nn.Conv2d) and convs[0].kernel_size == (1, 1)
    assert (convs[0].in_channels, convs[0].out_channels) == (4, 6)
    assert isinstance(convs[1], nn.Identity)  # per level, as mmrazor's connectors
    assert len(loss.generators) == 2 and loss.generators[1][0].in_channels == 6
    torch.manual_seed(7)
    got = loss(s, t).item()
    expected = 3.0 * reference(loss, s, t, 7, 1e-2, 0.45, on_channel)
    assert got == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------- gradients
def test_gradients_reach_student_align_and_generators_not_teacher():
    s = [f.requires_grad_() for f in feats(4, (2, 4, 4, 4), (2, 4, 2, 2))]
    t = [f.requires_grad_() for f in feats(5, (2, 6, 4, 4), (2, 6, 2, 2))]
    loss = build(s, t, lambda_mgd=0.3)
    torch.manual_seed(0)
    loss(s, t).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)
    params = list(loss.adapters.parameters()) + list(loss.generators.parameters())
    assert params and all(p.grad is not None for p in params)


# ------------------------------------------------------------------ errors
def test_errors_are_clear():
    s, t = feats(6, (1, 4, 4, 4), (1, 4, 2, 2)), feats(7, (1, 4, 4, 4), (1, 4, 2, 2))
    with pytest.raises(RuntimeError, match='setup'):
        MGDLoss()(s, t)
    with pytest.raises(ValueError, match='same number of FPN levels'):
        MGDLoss().setup(shapes_of(s, t[:1]), 'loss_mgd')
    loss = build(s, t)
    with pytest.raises(ValueError, match='2 student levels but 1 teacher'):
        loss(s, t[:1])
    with pytest.raises(ValueError, match='resize_student'):
        MGDLoss().setup(shapes_of(s, feats(8, (1, 4, 8, 8), (1, 4, 2, 2))), 'loss_mgd')
    with pytest.raises(ValueError, match='setup'):  # features unlike the recorded shapes
        loss(feats(9, (1, 4, 4, 4), (1, 4, 2, 2)), feats(9, (1, 4, 4, 4), (1, 5, 2, 2)))
    with pytest.raises(ValueError, match='channel mismatch without adapter'):
        MGDLoss(adapter=None).setup(shapes_of(s, feats(8, (1, 6, 4, 4), (1, 6, 2, 2))),
                                    'loss_mgd')
    with pytest.raises(ValueError, match='lambda_mgd'):
        MGDLoss(lambda_mgd=1.5)


# --------------------------------------------------- parity with mmrazor
def _mmrazor_mgd():
    try:
        from mmkd_det.compat import import_mmrazor_models
        import_mmrazor_models()
        from mmrazor.models.architectures.connectors import MGDConnector
        from mmrazor.models.losses import MGDLoss as RazorMGDLoss
    except ImportError as err:
        pytest.skip(f'mmrazor not importable: {err}')
    return MGDConnector, RazorMGDLoss


def _copy(dst, src):
    dst_sd, src_sd = dst.state_dict(), src.state_dict()
    assert list(dst_sd) == list(src_sd)
    with torch.no_grad():
        for k, v in dst_sd.items():
            v.copy_(src_sd[k])


@pytest.mark.parametrize('on_channel,lam,alpha', [(False, 0.65, 2e-5), (True, 0.45, 5e-7)])
def test_parity_with_mmrazor(on_channel, lam, alpha):
    Connector, RazorLoss = _mmrazor_mgd()
    # three levels: the first two need an align conv (student narrower), the last not
    s = feats(20, (2, 4, 12, 10), (2, 4, 6, 5), (2, 6, 3, 3), scale=5.0)
    t = feats(21, (2, 6, 12, 10), (2, 6, 6, 5), (2, 6, 3, 3), scale=0.5)
    torch.manual_seed(100)
    conns = [Connector(a.shape[1], b.shape[1], lambda_mgd=lam, mask_on_channel=on_channel)
             for a, b in zip(s, t)]
    razor = RazorLoss(alpha_mgd=alpha)
    ours = build(s, t, alpha_mgd=alpha, lambda_mgd=lam, mask_on_channel=on_channel)
    for lvl, conn in enumerate(conns):
        if conn.align is not None:
            _copy(ours.adapters['s_feats'].convs[lvl], conn.align)
        else:
            assert isinstance(ours.adapters['s_feats'].convs[lvl], nn.Identity)
        _copy(ours.generators[lvl], conn.generation)
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = sum(razor(conn(a), b).item() for conn, a, b in zip(conns, s, t))
        torch.manual_seed(seed)
        assert ours(s, t).item() == pytest.approx(expected, rel=1e-6)
    # the masks matter: another seed gives another value
    torch.manual_seed(2)
    assert ours(s, t).item() != pytest.approx(expected, rel=1e-3)
