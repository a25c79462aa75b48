"""PointwiseConv2d against nn.Conv2d (values, gradients, state dict) and the swap."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ContextBlock
from torch import nn

from mmkd_det.models.connectors import LevelAdapters, SubsampledNonLocal2d
from mmkd_det.models.utils import PointwiseConv2d, pointwise_convs
from mmkd_det.models.utils.pointwise_conv import is_pointwise


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize('bias', [True, False])
def test_values_and_gradients_match_conv2d(bias):
    ours = PointwiseConv2d(5, 3, 1, bias=bias)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(3, 5, 1, 1, generator=gen(0)))
        if bias:
            ours.bias.copy_(torch.randn(3, generator=gen(1)))
    x = torch.randn(2, 5, 4, 6, generator=gen(2), dtype=torch.float64).float()
    x.requires_grad_()
    y = ours(x)
    # independent path: the 1x1 conv written as a sum over input channels
    w = ours.weight[:, :, 0, 0]
    expected = torch.einsum('oc,nchw->nohw', w.detach(), x.detach())
    if bias:
        expected = expected + ours.bias.detach()[None, :, None, None]
    torch.testing.assert_close(y.detach(), expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(y.shape, generator=gen(3))
    grads = torch.autograd.grad(y, [x] + list(ours.parameters()), upstream)
    ref_y = F.conv2d(x, ours.weight, ours.bias)
    ref_grads = torch.autograd.grad(ref_y, [x] + list(ours.parameters()), upstream)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    # the weight gradient sums over the batch and the positions: check one entry by hand
    manual = (upstream[:, 1] * x.detach()[:, 4]).sum()
    torch.testing.assert_close(grads[1][1, 4, 0, 0], manual, rtol=1e-5, atol=1e-5)


def test_same_state_dict_as_conv2d_and_fallbacks():
    conv = nn.Conv2d(4, 2, 1)
    ours = PointwiseConv2d(4, 2, 1)
    ours.load_state_dict(conv.state_dict())  # strict: same keys and shapes
    x = torch.randn(1, 4, 3, 3, generator=gen(4))
    torch.testing.assert_close(ours(x), conv(x))
    # channels-last input: the convolution path, same result
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x_cl), conv(x))
    with pytest.raises(ValueError, match='1x1'):
        PointwiseConv2d(4, 2, 3, padding=1)
    with pytest.raises(ValueError, match='1x1'):
        PointwiseConv2d(4, 2, 1, stride=2)


def test_swap_shares_parameters_and_skips_other_convs():
    tree = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.Sequential(nn.Conv2d(4, 2, 1, bias=False)))
    weights = [tree[0].weight, tree[3][0].weight]
    before = copy.deepcopy(tree)
    assert pointwise_convs(tree) is tree
    assert type(tree[0]) is PointwiseConv2d and type(tree[3][0]) is PointwiseConv2d
    assert type(tree[2]) is nn.Conv2d and not is_pointwise(tree[2])
    assert tree[0].weight is weights[0] and tree[3][0].weight is weights[1]
    assert tree[3][0].bias is None
    assert tree.state_dict().keys() == before.state_dict().keys()
    x = torch.randn(2, 4, 5, 5, generator=gen(5))
    torch.testing.assert_close(tree(x), before(x), rtol=1e-5, atol=1e-6)
    # a bare 1x1 conv is returned as a new module
    bare = nn.Conv2d(3, 3, 1)
    assert type(pointwise_convs(bare)) is PointwiseConv2d


def test_distillation_modules_use_it():
    adapters = LevelAdapters([4, 4], [8, 8], kernel_size=1)
    assert all(type(c) is PointwiseConv2d for c in adapters.convs)
    assert all(type(c) is nn.Conv2d for c in LevelAdapters([4], [8], kernel_size=3).convs)
    block = SubsampledNonLocal2d(8, sub_sample=2, reduction=2)
    kinds = [type(m) for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert kinds and all(k is PointwiseConv2d for k in kinds)
    gc = pointwise_convs(ContextBlock(8, ratio=0.5))
    assert type(gc.conv_mask) is PointwiseConv2d
