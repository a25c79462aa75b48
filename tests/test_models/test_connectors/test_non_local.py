"""SubsampledNonLocal2d against mmcv's NonLocal2d and hand counts."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import NonLocal2d
from torch import nn

from mmkd_det.models.connectors import SubsampledNonLocal2d
from mmkd_det.registry import MODELS

MODES = ['embedded_gaussian', 'dot_product', 'gaussian', 'concatenation']


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


def x_of(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('mode', MODES)
def test_matches_mmcv_sub_sample_2(mode):
    ref = NonLocal2d(4, sub_sample=True, mode=mode, norm_cfg=dict(type='BN'), zeros_init=False)
    randomise(ref, 0)
    ours = SubsampledNonLocal2d(4, sub_sample=2, mode=mode, zeros_init=False)
    ours.load_state_dict(ref.state_dict())  # strict: same keys and shapes
    ref.eval()
    ours.eval()
    x = x_of(1, 2, 4, 6, 4)
    with torch.no_grad():
        expected = ref(x)
        out = ours(x)
        # the non-local branch matters, so the comparison is not x == x
        assert (expected - x).abs().max() > 0.1
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
        # a block without pooling is a different function
        unpooled = SubsampledNonLocal2d(4, sub_sample=1, mode=mode, zeros_init=False)
        unpooled.load_state_dict(_unpooled_state(ref))
        unpooled.eval()
        assert (unpooled(x) - expected).abs().max() > 1e-3


def _unpooled_state(ref):
    return {k.replace('g.0.', 'g.').replace('phi.0.', 'phi.'): v
            for k, v in ref.state_dict().items()}


@pytest.mark.parametrize('mode', MODES)
def test_matches_mmcv_without_pooling_odd_size(mode):
    ref = NonLocal2d(4, sub_sample=False, mode=mode, norm_cfg=dict(type='BN'), zeros_init=False)
    randomise(ref, 2)
    ours = SubsampledNonLocal2d(4, sub_sample=1, mode=mode, zeros_init=False)
    ours.load_state_dict(ref.state_dict())
    ref.eval()
    ours.eval()
    x = x_of(3, 2, 4, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize('mode', ['embedded_gaussian', 'dot_product', 'concatenation'])
def test_sub_sample_1_has_no_pooling(mode):
    block = SubsampledNonLocal2d(4, sub_sample=1, mode=mode)
    assert block.stride == 1 and not block.sub_sample
    assert not any(isinstance(m, nn.MaxPool2d) for m in block.modules())
    x = x_of(4, 1, 4, 3, 5)
    with torch.no_grad():
        assert block.phi(x).shape == (1, 2, 3, 5)  # 15 keys = HW
        assert block.g(x).shape == (1, 2, 3, 5)
    pooled = SubsampledNonLocal2d(4, sub_sample=2, mode=mode)
    with torch.no_grad():
        assert pooled.phi(x).shape == (1, 2, 2, 3)  # ceil(3/2) x ceil(5/2)


def test_gaussian_sub_sample_pools_the_input():
    block = SubsampledNonLocal2d(4, sub_sample=2, mode='gaussian')
    assert isinstance(block.phi, nn.MaxPool2d)
    x = x_of(5, 1, 4, 4, 4)
    torch.testing.assert_close(block.phi(x), F.max_pool2d(x, 2), rtol=0, atol=0)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('train', [True, False])
def test_zeros_init_is_identity(mode, train):
    block = SubsampledNonLocal2d(4, sub_sample=2, mode=mode)
    bn = block.conv_out.bn
    assert bn.weight.abs().sum() == 0 and bn.bias.abs().sum() == 0
    # everything but the output BN random: still the identity
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if not name.startswith('conv_out.bn'):
                p.copy_(torch.randn(p.shape, generator=g))
    block.train(train)
    x = x_of(7, 2, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)
        bn.weight.fill_(1.0)
        assert (block(x) - x).abs().max() > 1e-3


def test_stride_3_ceil_mode_on_7x7():
    block = SubsampledNonLocal2d(4, sub_sample=3, mode='embedded_gaussian', zeros_init=False)
    randomise(block, 8)
    x = x_of(9, 2, 4, 7, 7)
    with torch.no_grad():
        phi = block.phi(x)
        assert phi.shape == (2, 2, 3, 3)  # ceil(7 / 3) = 3: the last row/column kept
        conv = block.phi[0](x)
        padded = F.pad(conv, (0, 2, 0, 2), value=-math.inf)  # 9x9, windows of 3
        torch.testing.assert_close(phi, F.max_pool2d(padded, 3), rtol=0, atol=0)
        # the last window holds row / column 6 only
        torch.testing.assert_close(phi[..., 2, 2], conv[..., 6, 6], rtol=0, atol=0)
        out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_relation_bytes_hand_count():
    block = SubsampledNonLocal2d(4, sub_sample=3, mode='dot_product')
    # 7x7 = 49 queries, ceil(7/3)^2 = 9 keys, 2 images, 4 bytes
    assert block.relation_bytes(7, 7, batch=2) == 3528
    assert block.relation_bytes(7, 7, batch=2, bytes_per_element=2) == 1764
    # the matrix actually built has that many elements
    seen = []
    pairwise = block.dot_product

    def spy(theta_x, phi_x):
        out = pairwise(theta_x, phi_x)
        seen.append(out.numel())
        return out

    block.dot_product = spy
    with torch.no_grad():
        block(x_of(10, 2, 4, 7, 7))
    assert seen == [3528 // 4]
    # docstring's COCO P2 (334 x 200): full matrix 66800^2 * 4 B, stride 8: 42 * 25 keys
    full = SubsampledNonLocal2d(4, sub_sample=1)
    assert full.relation_bytes(334, 200) == 66800 * 66800 * 4 == 17_848_960_000
    assert SubsampledNonLocal2d(4, sub_sample=8).relation_bytes(334, 200) == 280_560_000


@pytest.mark.parametrize('bad', [0, -2])
def test_bad_sub_sample_raises(bad):
    with pytest.raises(ValueError, match='sub_sample'):
        SubsampledNonLocal2d(4, sub_sample=bad)


def test_registry_build():
    block = MODELS.build(dict(type='SubsampledNonLocal2d', in_channels=6, sub_sample=2,
                              reduction=3, mode='dot_product'))
    assert isinstance(block, SubsampledNonLocal2d)
    assert block.inter_channels == 2 and block.stride == 2


@pytest.mark.parametrize('mode', ['embedded_gaussian', 'gaussian'])
def test_floor_mode_matches_mmcv_on_odd_sizes(mode):
    """ceil_mode=False rounds down as mmcv (and mmrazor, the authors' code) do: on a
    7 x 9 input, stride 2 keeps 3 x 4 keys and the outputs equal mmcv's."""
    torch.manual_seed(3)
    ref = NonLocal2d(4, sub_sample=True, mode=mode, norm_cfg=dict(type='BN'), zeros_init=False)
    ours = SubsampledNonLocal2d(4, sub_sample=2, mode=mode, zeros_init=False, ceil_mode=False)
    ours.load_state_dict(ref.state_dict())
    ref.eval(), ours.eval()
    x = torch.randn(2, 4, 7, 9)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert ours.relation_bytes(7, 9) == 7 * 9 * 3 * 4 * 4
    ceil = SubsampledNonLocal2d(4, sub_sample=2, mode=mode, zeros_init=False)
    assert ceil.relation_bytes(7, 9) == 7 * 9 * 4 * 5 * 4
