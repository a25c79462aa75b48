r"""ReviewKD: Distilling Knowledge via Knowledge Review (Chen, Liu, Zhao, Jia; CVPR 2021).

`Paper <https://arxiv.org/abs/2104.09044>`_; authors' code `dvlab-research/ReviewKD
<https://github.com/dvlab-research/ReviewKD>`_ (``Detection/model/kd_trans.py`` on
detectron2, which this module follows value for value).

Shapes: per level ``i = 1..n`` (shallow to deep) student features ``F_s^i``
``(N, C_s, H_i, W_i)`` and teacher features ``F_t^i`` ``(N, C_t, H_i, W_i)``.

**Review mechanism, residual form** (paper Sec. 3, Fig. 2d; equation numbers are not
cited: the paper text is not among ``../shared/papers``, the facts come from the
authors' code). The student's levels are fused from
the deepest to the shallowest by attention based fusion (ABF) modules; each
level's fused output is compared with the teacher's same level:

.. math::
    Z_n = \mathcal{M}_n(F_s^n), \qquad
    (Y_i, Z_i) = \mathcal{ABF}_i(F_s^i, Z_{i+1}),

    L_{review} = \sum_{i=1}^{n} \mathcal{D}(Y_i, F_t^i)

``Z_i`` is the fused (residual) feature handed to the next shallower level and
``Y_i`` the level's output.

**ABF** (paper Fig. 3a; the code's ``ABF``). ``x = BN(conv_{1x1}(F_s^i))`` to
``C_mid`` channels; for every level but the deepest the residual ``Z_{i+1}`` is
nearest-upsampled to ``x``'s size, the two are concatenated and a 1x1 conv (with
bias) + sigmoid gives two maps ``a, b`` of shape (N, 1, H, W):

.. math::
    Z_i = a \odot x + b \odot \mathrm{up}(Z_{i+1}), \qquad
    Y_i = BN(conv_{3x3}(Z_i))

(The sigmoids are independent: ``a + b`` need not be 1. ``attention='softmax'``
makes them sum to 1 per position.)

**HCL, hierarchical context loss** (paper Fig. 3b; the code's ``hcl``). Per level,
the MSE of the full maps plus the MSEs of adaptive-average-pooled ``k x k`` maps
for ``k`` in (4, 2, 1), weights halving, normalised by their sum:

.. math::
    \mathcal{D}(Y, T) = \frac{\mathrm{MSE}(Y, T) + \sum_{j} 2^{-j}\,
        \mathrm{MSE}(P_{k_j}(Y), P_{k_j}(T))}{1 + \sum_j 2^{-j}}

where ``j = 1, 2, ...`` runs over the pool sizes used: a size ``k >= H`` (the
level's height) is skipped, as in the code, and the weights of the remaining
ones halve in order (1/2, 1/4, 1/8 when all three are used).

For detection the authors apply this to the five FPN outputs of detectron2's
detectors (P2-P6 for Faster R-CNN, P3-P7 for RetinaNet; 256 channels, ``C_mid``
256), ``REVIEWKD_LOSS_WEIGHT`` 1.0, teacher features detached.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss

#: the authors' pooled sizes of the hierarchical context loss
HCL_POOL_SIZES = (4, 2, 1)
ATTENTIONS = ('sigmoid', 'softmax')


class ABF(nn.Module):
    r"""Attention based fusion of one student level with the fused feature of the
    deeper level (see the module docstring).

    Args:
        in_channels (int): ``C_s`` of this student level.
        mid_channels (int): ``C_mid`` of the fused features ``Z``.
        out_channels (int): ``C_t`` of the teacher's level.
        fuse (bool): False for the deepest level (no residual to fuse).
        attention (str): ``'sigmoid'`` (authors: two independent gates) or
            ``'softmax'`` (the two weights sum to 1 per position).

    The 1x1 and 3x3 conv weights are ``kaiming_uniform_(a=1)`` (as the authors);
    the attention conv keeps PyTorch's default initialisation.
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 fuse: bool,
                 attention: str = 'sigmoid'):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f'attention must be one of {ATTENTIONS}, got {attention!r}.')
        self.attention = attention
        self.conv_in = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(mid_channels))
        self.conv_out = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.att_conv = nn.Conv2d(2 * mid_channels, 2, kernel_size=1) if fuse else None
        nn.init.kaiming_uniform_(self.conv_in[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv_out[0].weight, a=1)

    def attention_maps(self, x: Tensor, residual: Tensor) -> Tensor:
        r"""``(a, b)`` stacked as (N, 2, H, W): ``act(conv_{1x1}([x; residual]))``,
        ``act`` a sigmoid per map or a softmax over the two."""
        logits = self.att_conv(torch.cat([x, residual], dim=1))
        return logits.sigmoid() if self.attention == 'sigmoid' else logits.softmax(dim=1)

    def forward(self, feat: Tensor, residual: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            feat (Tensor): student level (N, C_s, H, W).
            residual (Tensor, optional): ``Z`` of the deeper level (N, C_mid, h, w);
                required iff the module fuses.

        Returns:
            tuple: ``Y`` (N, C_t, H, W) and ``Z`` (N, C_mid, H, W).
        """
        x = self.conv_in(feat)
        if self.att_conv is not None:
            if residual is None:
                raise ValueError('ABF: this level fuses the deeper level; pass its residual.')
            residual = F.interpolate(residual, size=x.shape[2:], mode='nearest')
            att = self.attention_maps(x, residual)
            x = x * att[:, 0:1] + residual * att[:, 1:2]
        return self.conv_out(x), x


def hcl_level_loss(s: Tensor, t: Tensor, pool_sizes: Sequence[int] = HCL_POOL_SIZES) -> Tensor:
    r"""Hierarchical context loss of one level (no weight):

    .. math::
        \mathcal{D}(Y, T) = \frac{\mathrm{MSE}(Y, T) + \sum_{j} 2^{-j}\,
            \mathrm{MSE}(P_{k_j}(Y), P_{k_j}(T))}{1 + \sum_j 2^{-j}}

    ``P_k`` is ``adaptive_avg_pool2d`` to ``k x k``; sizes ``k >= H`` are skipped
    (the authors test the height only; ``j`` counts the sizes used). MSEs are
    means over their elements.

    Args:
        s (Tensor): fused student output Y (N, C, H, W).
        t (Tensor): teacher (N, C, H, W); detached here.

    Returns:
        Tensor: scalar.
    """
    t = t.detach()
    loss = F.mse_loss(s, t, reduction='mean')
    weight, total = 1.0, 1.0
    for k in pool_sizes:
        if k >= s.shape[2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(
            F.adaptive_avg_pool2d(s, (k, k)), F.adaptive_avg_pool2d(t, (k, k)), reduction='mean')
        total += weight
    return loss / total


@MODELS.register_module()
class ReviewKDLoss(BaseDistillLoss):
    r"""Knowledge review on FPN levels: ABF fusion deep -> shallow, then HCL per level,
    summed, times ``loss_weight`` (the residual review form, module docstring):

    .. math::
        L = w \sum_i \mathcal{D}(Y_i, T_i)

    The ABF modules (one per level) are built in :meth:`setup` from the recorded
    shapes and trained with the student (optimizer and checkpoint: they are
    sub-modules of the Distiller); they are not part of the exported student.

    Args:
        mid_channels (int, optional): ``C_mid``. Defaults to None: the teacher's
            width (all levels must then have it; FPN levels do; the authors: 256).
        attention (str): ``'sigmoid'`` (default, authors) or ``'softmax'``.
        pool_sizes (tuple): HCL pooled sizes. Defaults to (4, 2, 1) (authors).
        **kwargs: ``loss_weight`` (authors: 1.0 for Faster R-CNN and RetinaNet),
            ``inputs`` (default ``s_feats='student.fpn'``, ``t_feats='teacher.fpn'``),
            ``resize_student`` (bilinearly resize each ``Y_i`` to the teacher's
            H, W where they differ; default False: a mismatch is an error).
            ``adapter`` must stay None: the ABFs map the channels.

    Inputs: per-level lists of (N, C, H, W) tensors ordered shallow to deep (the
    order of an mmdet neck's outputs).
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    default_adapter = None

    def __init__(self,
                 mid_channels: Optional[int] = None,
                 attention: str = 'sigmoid',
                 pool_sizes: Sequence[int] = HCL_POOL_SIZES,
                 **kwargs):
        super().__init__(**kwargs)
        if self.adapter_cfg is not None:
            raise ValueError('ReviewKDLoss: the ABF modules map student to teacher channels; '
                             'leave adapter unset (None).')
        if attention not in ATTENTIONS:
            raise ValueError(f'attention must be one of {ATTENTIONS}, got {attention!r}.')
        if any(int(k) < 1 for k in pool_sizes):
            raise ValueError(f'pool_sizes must be positive integers, got {tuple(pool_sizes)}.')
        self.mid_channels = mid_channels
        self.attention = attention
        self.pool_sizes = tuple(int(k) for k in pool_sizes)
        self.abfs = nn.ModuleList()

    def setup(self, shapes, name: str = '') -> None:
        """Check the recorded shapes and build one ABF per level (the deepest without
        fusion) from the student widths to the teacher widths."""
        super().setup(shapes, name)
        s_shapes, t_shapes = shapes['s_feats'], shapes['t_feats']
        self._check_levels(shapes, 's_feats', 't_feats', name)
        if any(s[2:] != t[2:] for s, t in zip(s_shapes, t_shapes)) and not self.resize_student:
            raise ValueError(
                f'{name}: spatial size of s_feats {[tuple(s[2:]) for s in s_shapes]} differs '
                f'from t_feats {[tuple(t[2:]) for t in t_shapes]} (H, W per level). Record '
                f'levels of the same stride, or set resize_student=True.')
        t_ch = [t[1] for t in t_shapes]
        mid = self.mid_channels
        if mid is None:
            if len(set(t_ch)) != 1:
                raise ValueError(f'{name}: teacher widths differ across levels {t_ch}; set '
                                 f'mid_channels on ReviewKDLoss.')
            mid = t_ch[0]
        last = len(s_shapes) - 1
        self.abfs = nn.ModuleList(
            ABF(s[1], mid, c, fuse=lvl < last, attention=self.attention)
            for lvl, (s, c) in enumerate(zip(s_shapes, t_ch)))

    def review(self, s_feats: Sequence[Tensor]) -> List[Tensor]:
        """The fused student outputs ``Y_i``, shallow to deep (computed deep to shallow)."""
        if len(self.abfs) != len(s_feats):
            raise RuntimeError(
                f'ReviewKDLoss has {len(self.abfs)} ABF modules for {len(s_feats)} levels: '
                f'call setup(shapes) first (the Distiller does) with the recorded shapes.')
        outs: List[Optional[Tensor]] = [None] * len(s_feats)
        residual = None
        for lvl in reversed(range(len(s_feats))):
            outs[lvl], residual = self.abfs[lvl](s_feats[lvl], residual)
        return outs

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        losses: List[Tensor] = []
        for lvl, (y, t) in enumerate(zip(self.review(s_feats), t_feats)):
            if y.shape[2:] != t.shape[2:] and self.resize_student:
                y = F.interpolate(y, size=t.shape[2:], mode='bilinear', align_corners=False)
            if y.shape != t.shape:
                raise ValueError(
                    f'ReviewKDLoss: level {lvl}: fused student {tuple(y.shape)} vs teacher '
                    f'{tuple(t.shape)}; the shapes given to setup do not match these '
                    f'features (or set resize_student=True for a size mismatch).')
            losses.append(hcl_level_loss(y, t, self.pool_sizes))
        return self.loss_weight * torch.stack(losses).sum()


__all__ = ['ReviewKDLoss', 'ABF', 'hcl_level_loss', 'HCL_POOL_SIZES']
