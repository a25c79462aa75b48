"""1x1 convolutions of the distillation modules as batched matrix products on CPU.

A 1x1 convolution with stride 1 is the matrix product ``W (C_out, C_in) @ x
(C_in, H W)`` per image. On the 2-core CPU of our CI machine, oneDNN's NCHW
convolution runs it at about half the speed of ``torch.baddbmm`` on the same
data. Measured forward + backward at P3 of a 1333x800 batch of 2
(``(2, 256, 100, 168)``, 2 threads), convolution vs product: 128 vs 72 ms
(256 -> 256), 65 vs 29 ms (256 -> 64), 63 vs 31 ms (64 -> 256); see
docs/benchmark.md. The adapters and non-local blocks of the losses are built
from such convolutions.

:class:`PointwiseConv2d` is an ``nn.Conv2d`` (same parameters, state-dict keys
and initialisation) whose forward takes the product on CPU and calls the
convolution everywhere else (CUDA, where cuDNN is not measured to be slower;
channels-last or non-contiguous inputs). :func:`pointwise_convs` swaps it in
for every eligible ``nn.Conv2d`` of a module tree, sharing the parameters.
"""
import torch
from torch import Tensor, nn


def is_pointwise(conv: nn.Module) -> bool:
    """True for a plain 1x1, stride-1, ungrouped, unpadded 2-D convolution."""
    return (isinstance(conv, nn.Conv2d) and tuple(conv.kernel_size) == (1, 1)
            and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and conv.groups == 1 and conv.padding in (0, (0, 0), 'valid'))


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(C_in, C_out, 1)`` computed as ``baddbmm`` on CPU (same values
    to float rounding, same gradients); any other use falls back to the
    convolution."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not is_pointwise(self):
            raise ValueError('PointwiseConv2d is for 1x1, stride-1, ungrouped, unpadded '
                             f'convolutions; got {self}.')

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != 'cpu' or x.dim() != 4 or not x.is_contiguous():
            return super().forward(x)
        n, c, h, w = x.shape
        weight = self.weight.reshape(1, self.out_channels, c).expand(n, -1, -1)
        x = x.reshape(n, c, h * w)
        if self.bias is None:
            y = torch.bmm(weight, x)
        else:
            y = torch.baddbmm(self.bias.reshape(1, -1, 1), weight, x)
        return y.reshape(n, self.out_channels, h, w)


def pointwise_convs(module: nn.Module) -> nn.Module:
    """Replace, in place, every 1x1 ``nn.Conv2d`` under ``module`` (itself
    included when it is one) by a :class:`PointwiseConv2d` holding the same
    parameter objects; returns the (possibly new) module."""
    if is_pointwise(module) and type(module) is nn.Conv2d:
        new = PointwiseConv2d(module.in_channels, module.out_channels, 1,
                              bias=module.bias is not None, device='meta')
        new.weight = module.weight
        new.bias = module.bias
        new.train(module.training)
        return new
    for name, child in module.named_children():
        swapped = pointwise_convs(child)
        if swapped is not child:
            setattr(module, name, swapped)
    return module
