"""Per-level adapters (mmkd_det.models.connectors.LevelAdapters)."""
import pytest
import torch

from mmkd_det.models.connectors import LevelAdapters
from mmkd_det.registry import MODELS


def set_weights(adapters, weight, bias):
    with torch.no_grad():
        for conv in adapters.convs:
            conv.weight.fill_(weight)
            conv.bias.fill_(bias)


def test_linear_and_relu_outputs_by_hand():
    # 1x1 conv 2 -> 1, weights -1, bias 0.5: input channels (1, 2) -> 0.5 - 3 = -2.5;
    # channels (0.1, 0.1) -> 0.3
    x = torch.tensor([[1.0, 0.1], [2.0, 0.1]]).view(1, 2, 1, 2)
    plain = LevelAdapters([2], [1])
    set_weights(plain, -1.0, 0.5)
    torch.testing.assert_close(plain([x])[0], torch.tensor([[[[-2.5, 0.3]]]]))
    relu = LevelAdapters([2], [1], relu=True)
    set_weights(relu, -1.0, 0.5)
    torch.testing.assert_close(relu([x])[0], torch.tensor([[[[0.0, 0.3]]]]))
    # same parameters and keys with or without the ReLU (it has none)
    assert relu.state_dict().keys() == plain.state_dict().keys()


def test_kernel_size_keeps_hw_and_errors():
    adapters = LevelAdapters([2, 3], [4, 5], kernel_size=3)
    outs = adapters([torch.zeros(1, 2, 5, 7), torch.zeros(1, 3, 2, 3)])
    assert [tuple(o.shape) for o in outs] == [(1, 4, 5, 7), (1, 5, 2, 3)]
    with pytest.raises(ValueError, match='2 student levels and 1 teacher'):
        LevelAdapters([2, 3], [4])
    with pytest.raises(ValueError, match='odd'):
        LevelAdapters([2], [4], kernel_size=2)


def test_loss_adapter_option_passes_relu():
    loss = MODELS.build(dict(type='FGFILoss', adapter=dict(kernel_size=3, relu=True)))
    shapes = [torch.Size([1, 2, 4, 4])]
    loss.setup(dict(s_feats=shapes, t_feats=shapes), 'fgfi')
    assert loss.adapters['s_feats'].relu
    assert loss.adapters['s_feats'].convs[0].kernel_size == (3, 3)
