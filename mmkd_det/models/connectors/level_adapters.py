"""Per-level convolutional adapters from student to teacher feature space."""
from typing import List, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from mmkd_det.registry import MODELS


@MODELS.register_module()
class LevelAdapters(BaseModule):
    """One ``k x k`` convolution per FPN level (no activation), student -> teacher.

    FRS (Du et al., NeurIPS 2021, Eq. 6, :math:`\\phi_{adapt}`) uses a 3x3 conv
    per level; FitNet-style hints use 1x1. Trained with the student, saved in
    distillation checkpoints, never part of the exported student.

    Args:
        in_channels (Sequence[int]): student channels per level.
        out_channels (Sequence[int]): teacher channels per level.
        kernel_size (int): 1 or 3 (any odd size). Defaults to 1.
        relu (bool): a ReLU after each conv, as FGFI's adapter on post-ReLU VGG
            features (``adapter=dict(kernel_size=3, relu=True)`` on a loss).
            FPN features are signed, so the default is False.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int],
                 kernel_size: int = 1,
                 relu: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(out_channels):
            raise ValueError(f'LevelAdapters got {len(in_channels)} student levels '
                             f'and {len(out_channels)} teacher levels.')
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd to keep H, W; got {kernel_size}.')
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)
            for c_in, c_out in zip(in_channels, out_channels))
        self.relu = bool(relu)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        outs = [conv(f) for conv, f in zip(self.convs, feats)]
        return [torch.relu(o) for o in outs] if self.relu else outs
