r"""DeFeat: Distilling Object Detectors via Decoupled Features (Guo et al., CVPR 2021).

`Paper <https://arxiv.org/abs/2103.14475>`_, code ``ggjy/DeFeat.pytorch``
(mmdet 2.0 fork: masks in ``mmdet/models/dense_heads/anchor_head.py``
``get_gt_mask`` / ``_map_roi_levels``, loss in ``mmdet/apis/train.py``
``batch_processor_kd``, ``neck-decouple`` / ``pixel-wise`` branch). This is the
neck (FPN) part of the method, the part its public VOC config enables; the
decoupled RoI-head KL term is not enabled there and is not implemented here.

Decoupled feature distillation (the paper's neck loss): the squared difference between
the adapted student and the teacher FPN features is split by a binary GT mask
``M`` into an object part and a background part, each normalised by its own
size and weighted separately:

.. math::
    L_{fg} = \frac{1}{L}\sum_l \frac{\sum_{n,c,h,w} M_{l,nhw}\,
             (\phi_l(S_l) - T_l)^2_{nchw}}{\max(1,\ 2\,C_l \sum_{n,h,w} M_{l,nhw})},
    \qquad
    L_{bg} = \text{same with } 1 - M_l

    L = w_{fg} L_{fg} + w_{bg} L_{bg}

The normalisers are the authors' code: the mask is repeated over the channels
before it is summed, so each is 2 x #positions x C over the whole batch, and the
levels are averaged (``level_reduction='mean'``). VOC config:
``hint_neck_w = 3`` (``fg_weight``), ``hint_neck_back_w = 12`` (``bg_weight``).

GT mask (``get_gt_mask``): every GT box is assigned to **one** level by the RoI
rule of FPN (:func:`~mmkd_det.models.utils.map_gt_levels`), divided by that
level's stride and truncated to integer cells, and set to 1 on that level only
(:func:`~mmkd_det.models.utils.gt_box_masks`).

Equation numbers are not cited: the paper text is not among ``../shared/papers``;
the formulas above are the paper's neck loss as the authors' code computes it.

Departures from the authors' code, each an option of :class:`DeFeatLoss`:

* Level rule box size (``level_legacy_offset``): the authors' ``_map_roi_levels``
  takes ``sqrt((w + 1)(h + 1))`` (the pre-mmdet-2 pixel convention); the default
  ``False`` takes ``sqrt(w h)`` with ``w = x2 - x1`` (mmdet >= 2, whose
  boxes this package receives). Only a box whose size is within about a pixel
  below a level boundary (``sqrt(wh) = 56 x 2^k``) changes level: e.g. a
  111 x 111 box is on level 0 by default and on level 1 with the offset
  (``sqrt(112 x 112) = 112``). ``True`` reproduces the authors.
* Level origin (``level_offset``): the authors apply the rule unchanged to
  P2-P6 (Faster R-CNN) and P3-P7 (RetinaNet); ``level_offset=-1`` shifts it.

One fix without an option: a box thinner than a cell at the bottom or right
border sets the last cell, where the authors' code would index past the map.

Shape shorthand: ``B`` images, ``G`` GT boxes per image (zero-padded to the
batch maximum, ``valid`` marks the real ones), per level ``(B, C, H, W)``.
"""
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils import (check_level_strides, gt_box_masks, init_adapters, map_gt_levels, pad_gt,
                     resolve_strides)
from .base_distill_loss import BaseDistillLoss, Shapes

LEVEL_REDUCTIONS = ('mean', 'sum')


@MODELS.register_module()
class DeFeatLoss(BaseDistillLoss):
    r"""DeFeat decoupled FPN feature loss, times ``loss_weight``.

    Returns ``dict(loss_fg=loss_weight * fg_weight * L_fg,
    loss_bg=loss_weight * bg_weight * L_bg)`` (see the module docstring).

    Args:
        fg_weight (float): weight of the object part. Defaults to 3 (VOC config).
        bg_weight (float): weight of the background part. Defaults to 12 (VOC config).
        finest_scale (float): ``s_0`` of the level rule,
            :func:`~mmkd_det.models.utils.map_gt_levels`.
        level_offset (int): added to the rule's level. 0 (default, authors' code
            for Faster R-CNN and RetinaNet alike) or -1 for RetinaNet-style P3-P7
            to match Faster R-CNN's P2-P6 strides.
        level_legacy_offset (bool): the level rule's box size is
            ``sqrt((w + 1)(h + 1))`` as in the authors' code; default False:
            ``sqrt(w h)`` (mmdet >= 2 boxes). See the module docstring.
        level_reduction (str): ``'mean'`` (default, authors' code) or ``'sum'``
            over levels.
        strides (list[int], optional): stride of every recorded level; defaults to
            the strides the Distiller passes (student dense head).
        adapter_init_std (float | None): adapter weight init,
            :func:`~mmkd_det.models.utils.init_adapters`; 1e-4 as the authors;
            None keeps PyTorch's default.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default a 3x3 conv per
            level, no activation, as the authors' ``neck_adapt``),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=3)

    def __init__(self,
                 fg_weight: float = 3.0,
                 bg_weight: float = 12.0,
                 finest_scale: float = 56.0,
                 level_offset: int = 0,
                 level_legacy_offset: bool = False,
                 level_reduction: str = 'mean',
                 strides: Optional[Sequence[int]] = None,
                 adapter_init_std: Optional[float] = 1e-4,
                 **kwargs):
        super().__init__(**kwargs)
        if level_reduction not in LEVEL_REDUCTIONS:
            raise ValueError(f'DeFeatLoss level_reduction={level_reduction!r}; choose one '
                             f'of {LEVEL_REDUCTIONS}.')
        if finest_scale <= 0:
            raise ValueError(f'DeFeatLoss finest_scale must be > 0, got {finest_scale}.')
        if int(level_offset) != level_offset:
            raise ValueError(f'DeFeatLoss level_offset must be an integer, got {level_offset}.')
        self.fg_weight, self.bg_weight = float(fg_weight), float(bg_weight)
        self.finest_scale, self.level_offset = float(finest_scale), int(level_offset)
        self.level_legacy_offset = bool(level_legacy_offset)
        self.level_reduction, self.strides = level_reduction, strides
        self.adapter_init_std = adapter_init_std

    def setup(self, shapes: Shapes, name: str = '') -> None:
        super().setup(shapes, name)
        init_adapters(self.adapters, self.adapter_init_std)

    @torch.no_grad()
    def masks(self,
              t_feats: Sequence[Tensor],
              gt_instances,
              strides=None,
              batch_img_metas=None) -> List[Tensor]:
        """Per-level (B, H, W) GT masks M."""
        if len(gt_instances) != t_feats[0].shape[0]:
            raise ValueError(f'DeFeatLoss: {len(gt_instances)} gt_instances for a batch of '
                             f'{t_feats[0].shape[0]} images.')
        strides = resolve_strides(self.strides if self.strides is not None else strides,
                                  len(t_feats), 'DeFeatLoss')
        check_level_strides(t_feats, strides, batch_img_metas, 'DeFeatLoss')
        gt, _, valid = pad_gt(gt_instances, t_feats[0].device)
        levels = map_gt_levels(gt, len(t_feats), self.finest_scale, self.level_offset,
                               self.level_legacy_offset)
        return gt_box_masks(gt, valid, levels, [tuple(f.shape[-2:]) for f in t_feats], strides)

    def visual_maps(self,
                    t_feats,
                    gt_instances,
                    strides=None,
                    batch_img_metas=None,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W) object mask M (background is 1 - M)."""
        return {
            'object mask M (GT, one level per box)':
            self.masks(t_feats, gt_instances, strides, batch_img_metas)
        }

    def forward(self,
                s_feats: Sequence[Tensor],
                t_feats: Sequence[Tensor],
                *,
                gt_instances,
                strides=None,
                batch_img_metas=None) -> Dict[str, Tensor]:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        masks = self.masks(t_feats, gt_instances, strides, batch_img_metas)
        fg_terms, bg_terms = [], []
        for sq, t, m in zip(self.squared_error_maps(s_feats, t_feats), t_feats, masks):
            channels = t.shape[1]  # sq: (B, H, W)
            fg_terms.append((sq * m).sum() / (2 * channels * m.sum()).clamp(min=1))
            bg_terms.append((sq * (1 - m)).sum() / (2 * channels * (1 - m).sum()).clamp(min=1))
        reduce = torch.mean if self.level_reduction == 'mean' else torch.sum
        fg, bg = reduce(torch.stack(fg_terms)), reduce(torch.stack(bg_terms))
        return dict(
            loss_fg=self.loss_weight * self.fg_weight * fg,
            loss_bg=self.loss_weight * self.bg_weight * bg)
