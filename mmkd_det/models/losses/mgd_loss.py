r"""MGD: Masked Generative Distillation (Yang et al., ECCV 2022).

`Paper <https://arxiv.org/abs/2205.01529>`_, authors' code ``yzd-v/MGD``
(``det/mmdet/distillation/losses/mgd.py``), ported by mmrazor 1.0.0 as
``MGDConnector`` (align, mask, generator) + ``MGDLoss`` (weighted sum of
squares). Shape shorthand per level: student ``S`` (N, C_s, H, W), teacher
``T`` (N, C, H, W).

Per level, on the student side only:

1. align: a 1x1 conv C_s -> C when the channel counts differ (else identity);
2. mask: ``M = 0`` where ``U > 1 - lambda`` else 1, ``U ~ U(0, 1)`` drawn anew
   at every forward, one value per (image, position), shape (N, 1, H, W)
   (``mask_on_channel=True``: per (image, channel), (N, C, 1, 1)); a fraction
   ``lambda`` of the entries is dropped on average;
3. generate: ``G(x) = Conv3x3(ReLU(Conv3x3(x)))``, both C -> C with bias;
4. loss: ``alpha * sum (G(align(S) * M) - T)^2 / N``.

Equation numbers are not cited: the paper text is not among
``../shared/papers``. The steps above are the paper's method as coded by the
authors and mmrazor, which this module reproduces value for value (same
masks under the same seed, see :func:`random_mask`).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss


def random_mask(feat: Tensor, lambda_mgd: float, mask_on_channel: bool = False) -> Tensor:
    """MGD's random mask for ``feat`` (N, C, H, W): 0 where ``U > 1 - lambda_mgd``, else 1.

    ``U`` is drawn with ``torch.rand`` from torch's global CPU generator and then
    moved to ``feat``'s device, as the authors' code and mmrazor do: seeding with
    ``torch.manual_seed`` reproduces their masks on any device. The draw is
    tiny ((N, 1, H, W) floats per level).

    Returns:
        Tensor: (N, 1, H, W), or (N, C, 1, 1) with ``mask_on_channel``, of 0/1
        in ``feat``'s dtype.
    """
    n, c, h, w = feat.shape
    shape = (n, c, 1, 1) if mask_on_channel else (n, 1, h, w)
    drop = torch.rand(shape) > 1 - lambda_mgd
    return (~drop).to(device=feat.device, dtype=feat.dtype)


def make_generator(channels: int) -> nn.Sequential:
    """The generation block: Conv3x3(C -> C) -> ReLU -> Conv3x3(C -> C), with
    biases and PyTorch's default initialisation (as the authors and mmrazor)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1))


@MODELS.register_module()
class MGDLoss(BaseDistillLoss):
    r"""Masked generative distillation summed over the recorded levels.

    .. math::
        L_{MGD} = w \, \alpha \sum_l \frac{1}{N} \sum_{n,c,h,w}
                  \big(G_l(\mathrm{align}_l(S_l) \cdot M_l) - T_l\big)^2_{n,c,h,w}

    ``w`` is ``loss_weight`` (default 1; the paper and mmrazor only have
    ``alpha``). The align convs (through the base class's ``adapter='auto'``)
    and one generator per level are built in :meth:`setup` from the recorded
    shapes; they are trained with the student and are not part of the exported
    student.

    Defaults are the authors' one-stage (RetinaNet) values; their two-stage
    configs (cascade teacher -> Faster / Mask R-CNN R50) use
    ``alpha_mgd=5e-7, lambda_mgd=0.45``.

    Args:
        alpha_mgd (float): weight of the generation loss. Defaults to 2e-5.
        lambda_mgd (float): masked ratio, in [0, 1]. Defaults to 0.65.
        mask_on_channel (bool): mask whole channels (N, C, 1, 1) instead of
            positions (N, 1, H, W). Defaults to False.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default ``'auto'``:
            the 1x1 align conv only at levels whose channels differ),
            ``resize_student`` (default False: H, W must match, as in mmrazor).

    Inputs ``s_feats='student.fpn'``, ``t_feats='teacher.fpn'``: per-level lists
    of (N, C, H, W) tensors. The authors record the outputs of
    ``neck.fpn_convs.{0..4}.conv`` (the five FPN levels).
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 alpha_mgd: float = 2e-5,
                 lambda_mgd: float = 0.65,
                 mask_on_channel: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= lambda_mgd <= 1.0:
            raise ValueError(f'lambda_mgd (masked ratio) must be in [0, 1], got {lambda_mgd}.')
        self.alpha_mgd = float(alpha_mgd)
        self.lambda_mgd = float(lambda_mgd)
        self.mask_on_channel = bool(mask_on_channel)
        self.generators = nn.ModuleList()

    def setup(self, shapes, name: str = '') -> None:
        """Build the align convs (base class) and one generator per teacher level.

        With ``adapter='auto'`` a level whose student and teacher channels are
        equal gets no align conv even when another level's differ (the base
        class would give every level one), as mmrazor's per-level connectors.
        """
        super().setup(shapes, name)
        if self.adapter_cfg == 'auto' and 's_feats' in self.adapters:
            convs = self.adapters['s_feats'].convs
            for lvl, (s, t) in enumerate(zip(shapes['s_feats'], shapes['t_feats'])):
                if s[1] == t[1]:
                    convs[lvl] = nn.Identity()
        self.generators = nn.ModuleList(make_generator(s[1]) for s in shapes['t_feats'])

    def generate(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> List[Tensor]:
        """Per level ``G_l(align_l(S_l) * M_l)`` with fresh random masks, levels in order."""
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        if len(self.generators) != len(t_feats):
            raise RuntimeError(
                f'MGDLoss has {len(self.generators)} generators for {len(t_feats)} levels: '
                f'call setup(shapes) first (the Distiller does) with the recorded shapes.')
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        out = []
        for lvl, (s, t, gen) in enumerate(zip(s_feats, t_feats, self.generators)):
            if s.shape[1:] != t.shape[1:]:
                raise ValueError(
                    f'MGDLoss: level {lvl} aligned student (C, H, W) {tuple(s.shape[1:])} '
                    f'differs from the teacher\'s {tuple(t.shape[1:])}; the shapes given to '
                    f'setup do not match these features.')
            out.append(gen(s * random_mask(s, self.lambda_mgd, self.mask_on_channel)))
        return out

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        losses = [
            F.mse_loss(g.float(), t.detach().float(), reduction='sum') / t.shape[0]
            for g, t in zip(self.generate(s_feats, t_feats), t_feats)
        ]
        return self.loss_weight * self.alpha_mgd * torch.stack(losses).sum()


__all__ = ['MGDLoss', 'random_mask', 'make_generator']
