r"""Global reasoning unit (GloRe): Chen, Rohrbach, Yan, Yan, Feng, Kalantidis, "Graph-Based
Global Reasoning Networks" (CVPR 2019, https://arxiv.org/abs/1811.12814).

Pixels are projected onto a few graph nodes, a graph convolution reasons over the nodes, and
the result is projected back onto the pixels. With ``X`` (C_1, HW) the reduced features and
``B`` (N, HW) the learned projection (both 1x1 convolutions of the input):

.. math::
    V = \frac{1}{HW} X B^\top \quad (C_1 \times N,\ \text{projection})

    Z = W\,\mathrm{ReLU}\big(V (I - A_g)^\top - b\big) \quad
    (\text{graph convolution: } A_g, b \text{ over the nodes}, W \text{ over the states})

    Y = Z B \quad (C_1 \times HW,\ \text{reprojection}), \qquad
    \mathrm{out} = x + \mathrm{BN}(\mathrm{conv}_{1\times1}(Y))\ \text{(residual) or }
    \mathrm{BN}(\mathrm{conv}_{1\times1}(Y))

The graph convolution is written as the GloRe paper and the DRKD paper print it,
:math:`Z = ((I - A_g)V)W_g`, with the GloRe authors' code's details: the node convolution
has a bias, a ReLU sits between the node and the state steps, and the output BN is
zero-initialised (their comment: "should be zero initialized"; option ``zero_init_bn``).
Their code adds the node convolution (``V + A V``) where the papers subtract it: the same
family, the sign absorbed by the learned :math:`A_g`. The ``1/HW`` normalisation of the
projection is their ``normalize`` option (off by default there, "not necessary if the
input size is fixed"); it is on by default here (``normalize``) because detection inputs
vary in size, so that :math:`V` does not scale with the image.
"""
import torch
from torch import Tensor, nn


class GloReUnit(nn.Module):
    """GloRe unit on (B, C, H, W) maps (module docstring).

    Args:
        in_channels (int): C.
        state_channels (int): C_1, the node state width. Defaults to 128.
        num_nodes (int): N. Defaults to 64.
        residual (bool): return ``x + BN(...)`` (the GloRe unit as published) or only the
            reprojected relation features ``BN(...)``. Defaults to True.
        zero_init_bn (bool): start the output BN's scale at 0 (the residual unit is then the
            identity at initialisation, as mmcv's non-local block). Defaults to True.
        normalize (bool): divide the projection by HW. Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 state_channels: int = 128,
                 num_nodes: int = 64,
                 residual: bool = True,
                 zero_init_bn: bool = True,
                 normalize: bool = True):
        super().__init__()
        if min(in_channels, state_channels, num_nodes) < 1:
            raise ValueError(f'GloReUnit: in_channels, state_channels and num_nodes must be '
                             f'>= 1, got {in_channels}, {state_channels}, {num_nodes}.')
        self.residual = residual
        self.normalize = normalize
        self.reduce = nn.Conv2d(in_channels, state_channels, 1)
        self.project = nn.Conv2d(in_channels, num_nodes, 1)
        self.node_adj = nn.Linear(num_nodes, num_nodes)  # A_g and b (over the nodes)
        self.state_update = nn.Linear(state_channels, state_channels, bias=False)  # W
        self.extend = nn.Conv2d(state_channels, in_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(in_channels)
        if zero_init_bn:
            nn.init.zeros_(self.bn.weight)

    def graph(self, x: Tensor) -> Tensor:
        """The reprojected relation features Y, (B, C_1, H, W), before the output conv."""
        b, _, h, w = x.shape
        states = self.reduce(x).flatten(2)  # (B, C1, HW)
        proj = self.project(x).flatten(2)  # (B, N, HW)
        v = states @ proj.transpose(1, 2)  # (B, C1, N)
        if self.normalize:
            v = v / (h * w)
        v = torch.relu(v - self.node_adj(v))  # (I - A) over the node index, then ReLU
        z = self.state_update(v.transpose(1, 2)).transpose(1, 2)  # W over the states
        return (z @ proj).view(b, -1, h, w)  # Y = Z B

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.extend(self.graph(x)))
        return x + out if self.residual else out
