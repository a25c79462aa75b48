"""Adapter initialisation (mmkd_det.models.utils.init_adapters)."""
import torch
from torch import nn

from mmkd_det.models.connectors import LevelAdapters
from mmkd_det.models.utils import init_adapters


def test_truncated_normal_weights_and_kept_biases():
    torch.manual_seed(0)
    adapters = nn.ModuleDict(dict(s_feats=LevelAdapters([64, 64], [64, 64], kernel_size=3)))
    biases = [c.bias.detach().clone() for c in adapters['s_feats'].convs]
    init_adapters(adapters, 1e-4)
    weights = torch.cat([c.weight.flatten() for c in adapters['s_feats'].convs])
    # truncated at 2 std; 2 x 64 x 64 x 9 = 73,728 draws: the spread of N(0, 1e-4)
    # truncated at 2 std is 0.88 x 1e-4
    assert weights.abs().max() <= 2e-4
    assert 0.8e-4 < weights.std() < 0.95e-4
    for conv, bias in zip(adapters['s_feats'].convs, biases):
        torch.testing.assert_close(conv.bias, bias, rtol=0, atol=0)


def test_none_keeps_the_default_init():
    torch.manual_seed(0)
    adapters = nn.ModuleDict(dict(s_feats=LevelAdapters([8], [8], kernel_size=1)))
    before = adapters['s_feats'].convs[0].weight.detach().clone()
    init_adapters(adapters, None)
    torch.testing.assert_close(adapters['s_feats'].convs[0].weight, before, rtol=0, atol=0)
    # PyTorch's default for 8 inputs is U(-1/sqrt(8), 1/sqrt(8)): far wider than 2e-4
    assert before.abs().max() > 0.1
