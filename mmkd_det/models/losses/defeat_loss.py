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
rule of FPN (:func:`map_gt_levels`), divided by that level's stride and
truncated to integer cells, and set to 1 on that level only
(:func:`gt_box_masks`).

Shape shorthand: ``B`` images, ``G`` GT boxes per image (zero-padded to the
batch maximum, ``valid`` marks the real ones), per level ``(B, C, H, W)``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss, Shapes
from .tid_loss import pad_gt

LEVEL_REDUCTIONS = ('mean', 'sum')


# ---------------------------------------------------------------- helpers
def map_gt_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.0,
                  level_offset: int = 0) -> Tensor:
    r"""FPN level of every box by the RoI rule (DeFeat ``_map_roi_levels``).

    .. math::
        lvl = \mathrm{clamp}\big(\lfloor \log_2(\sqrt{wh} / s_0 + 10^{-6}) \rfloor
              + offset,\ 0,\ L - 1\big)

    ``s_0 = finest_scale`` (56, FPN's RoI rule). Level 0 is the first recorded
    level: P2 for Faster R-CNN (P2-P6), P3 for RetinaNet (P3-P7). The authors use
    the rule unchanged for both (``level_offset=0``), so a RetinaNet object goes one
    stride coarser than the same object in Faster R-CNN; ``level_offset=-1`` on
    P3-P7 gives Faster R-CNN's stride for every object larger than 112 px.
    ``w, h`` are ``x2 - x1``, ``y2 - y1`` (mmdet >= 2 convention; the authors' code
    adds the legacy +1 to each, a difference of one pixel).

    Args:
        boxes (Tensor): (..., 4) xyxy boxes.
        num_levels (int): L.

    Returns:
        Tensor: long level indices, shape ``boxes.shape[:-1]``.
    """
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    scale = (w * h).sqrt()
    lvl = torch.floor(torch.log2(scale / finest_scale + 1e-6)).long() + int(level_offset)
    return lvl.clamp(min=0, max=num_levels - 1)


def gt_box_masks(boxes: Tensor, valid: Tensor, levels: Tensor,
                 featmap_sizes: Sequence[Tuple[int, int]],
                 strides: Sequence[int]) -> List[Tensor]:
    """Binary GT masks of DeFeat (``get_gt_mask``), one (B, H, W) per level.

    A box assigned to level ``l`` covers, on that level only, the cells
    ``[int(y1/s), min(int(y2/s), H)) x [int(x1/s), min(int(x2/s), W))`` (end
    exclusive, start clipped at 0, ``s`` the level stride, ``int`` truncation).
    When that window is empty along an axis (a box thinner than a cell) only the
    cell ``(int(y1/s), int(x1/s))`` is set, as in the authors' code (clipped into
    the map here, where the original would index past its border). Overlapping
    boxes give 1 (union). Padded boxes (``valid`` False) set nothing.

    Each mask is the union of separable windows, computed as one batched matrix
    product of per-box row and column indicators (no loop over boxes).

    Args:
        boxes (Tensor): (B, G, 4) xyxy in the input image frame.
        valid (Tensor): (B, G) bool.
        levels (Tensor): (B, G) level of every box (:func:`map_gt_levels`).
        featmap_sizes: (H, W) per level.
        strides: stride per level.
    """
    masks = []
    for lvl, ((h, w), stride) in enumerate(zip(featmap_sizes, strides)):
        cells = boxes / float(stride)
        x1 = cells[..., 0].trunc().long().clamp(min=0)
        y1 = cells[..., 1].trunc().long().clamp(min=0)
        x2 = cells[..., 2].trunc().long().clamp(max=w)
        y2 = cells[..., 3].trunc().long().clamp(max=h)
        degenerate = ((x1 == x2) | (y1 == y2))[..., None]
        ys = torch.arange(h, device=boxes.device)
        xs = torch.arange(w, device=boxes.device)
        rows = torch.where(degenerate, ys == y1.clamp(max=h - 1)[..., None],
                           (ys >= y1[..., None]) & (ys < y2[..., None]))      # (B, G, H)
        cols = torch.where(degenerate, xs == x1.clamp(max=w - 1)[..., None],
                           (xs >= x1[..., None]) & (xs < x2[..., None]))      # (B, G, W)
        keep = (valid & (levels == lvl))[..., None].float()
        hits = torch.einsum('bgh,bgw->bhw', rows.float() * keep, cols.float())
        masks.append((hits > 0).float())
    return masks


def resolve_strides(strides: Optional[Sequence], num_levels: int, name: str) -> List[int]:
    """Per-level strides as ints, or a ValueError naming the fix."""
    if strides is None:
        raise ValueError(f'{name} needs the stride of every recorded level: the Distiller '
                         f'passes the strides of the student dense head (bbox_head or '
                         f'rpn_head); the student has none, so set strides=[...] on the loss.')
    strides = [int(s[0]) if isinstance(s, (tuple, list)) else int(s) for s in strides]
    if len(strides) != num_levels:
        raise ValueError(f'{name}: {num_levels} recorded feature levels but {len(strides)} '
                         f'strides {strides}; record the neck levels the dense head reads '
                         f'(or set strides=[...] on the loss to the recorded levels).')
    return strides


def check_level_strides(feats: Sequence[Tensor], strides: Sequence[int],
                        batch_img_metas: Optional[Sequence[dict]], name: str) -> None:
    """Each level must have ``batch_input_shape / stride`` cells (within one).

    Catches features of the wrong levels (e.g. backbone outputs, or FPN levels
    shifted against the head's strides), which would misplace every box.
    """
    if not batch_img_metas or 'batch_input_shape' not in batch_img_metas[0]:
        return
    in_h, in_w = batch_img_metas[0]['batch_input_shape'][:2]
    for lvl, (f, s) in enumerate(zip(feats, strides)):
        h, w = f.shape[-2:]
        if abs(h - in_h / s) >= 1 or abs(w - in_w / s) >= 1:
            raise ValueError(
                f'{name}: level {lvl} is {h}x{w} but a {in_h}x{in_w} input at stride {s} '
                f'gives {in_h / s:g}x{in_w / s:g}; the recorded features are not the levels '
                f'of strides {list(strides)}.')


def init_adapters(adapters: nn.ModuleDict, std: Optional[float]) -> None:
    """Weights of every adapter conv ~ N(0, std) truncated at 2 std (biases kept).

    DeFeat and FGFI initialise their adapters this way with std 1e-4 (the authors'
    ``weight.normal_().fmod_(2).mul_(1e-4)``; fmod wraps rather than redraws the
    tails, the same support and nearly the same spread). ``None``: PyTorch's default.
    """
    if std is None:
        return
    for module in adapters.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


# -------------------------------------------------------------------- loss
@MODELS.register_module()
class DeFeatLoss(BaseDistillLoss):
    r"""DeFeat decoupled FPN feature loss, times ``loss_weight``.

    Returns ``dict(loss_fg=loss_weight * fg_weight * L_fg,
    loss_bg=loss_weight * bg_weight * L_bg)`` (see the module docstring).

    Args:
        fg_weight (float): weight of the object part. Defaults to 3 (VOC config).
        bg_weight (float): weight of the background part. Defaults to 12 (VOC config).
        finest_scale (float): ``s_0`` of the level rule, :func:`map_gt_levels`.
        level_offset (int): added to the rule's level, :func:`map_gt_levels`.
            0 (default, authors' code for Faster R-CNN and RetinaNet alike) or -1
            for RetinaNet-style P3-P7 to match Faster R-CNN's P2-P6 strides.
        level_reduction (str): ``'mean'`` (default, authors' code) or ``'sum'``
            over levels.
        strides (list[int], optional): stride of every recorded level; defaults to
            the strides the Distiller passes (student dense head).
        adapter_init_std (float | None): adapter weight init, :func:`init_adapters`;
            1e-4 as the authors; None keeps PyTorch's default.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default a 3x3 conv per
            level, no activation, as the authors' ``neck_adapt``),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'),)
    default_adapter = dict(kernel_size=3)

    def __init__(self, fg_weight: float = 3.0, bg_weight: float = 12.0,
                 finest_scale: float = 56.0, level_offset: int = 0,
                 level_reduction: str = 'mean', strides: Optional[Sequence[int]] = None,
                 adapter_init_std: Optional[float] = 1e-4, **kwargs):
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
        self.level_reduction, self.strides = level_reduction, strides
        self.adapter_init_std = adapter_init_std

    def setup(self, shapes: Shapes, name: str = '') -> None:
        super().setup(shapes, name)
        init_adapters(self.adapters, self.adapter_init_std)

    @torch.no_grad()
    def masks(self, t_feats: Sequence[Tensor], gt_instances, strides=None,
              batch_img_metas=None) -> List[Tensor]:
        """Per-level (B, H, W) GT masks M."""
        if len(gt_instances) != t_feats[0].shape[0]:
            raise ValueError(f'DeFeatLoss: {len(gt_instances)} gt_instances for a batch of '
                             f'{t_feats[0].shape[0]} images.')
        strides = resolve_strides(self.strides if self.strides is not None else strides,
                                  len(t_feats), 'DeFeatLoss')
        check_level_strides(t_feats, strides, batch_img_metas, 'DeFeatLoss')
        gt, _, valid = pad_gt(gt_instances, t_feats[0].device)
        levels = map_gt_levels(gt, len(t_feats), self.finest_scale, self.level_offset)
        return gt_box_masks(gt, valid, levels, [tuple(f.shape[-2:]) for f in t_feats], strides)

    def visual_maps(self, t_feats, gt_instances, strides=None, batch_img_metas=None,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W) object mask M (background is 1 - M)."""
        return {'object mask M (GT, one level per box)':
                self.masks(t_feats, gt_instances, strides, batch_img_metas)}

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *,
                gt_instances, strides=None, batch_img_metas=None) -> Dict[str, Tensor]:
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        masks = self.masks(t_feats, gt_instances, strides, batch_img_metas)
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        fg_terms, bg_terms = [], []
        for s, t, m in zip(s_feats, t_feats, masks):
            if s.shape != t.shape:
                raise ValueError(f'DeFeatLoss: adapted student {tuple(s.shape)} vs teacher '
                                 f'{tuple(t.shape)}.')
            sq = (s - t.detach()).pow(2).sum(dim=1)                 # (B, H, W), sum over c
            channels = t.shape[1]
            fg_terms.append((sq * m).sum() / (2 * channels * m.sum()).clamp(min=1))
            bg_terms.append((sq * (1 - m)).sum() / (2 * channels * (1 - m).sum()).clamp(min=1))
        reduce = torch.mean if self.level_reduction == 'mean' else torch.sum
        fg, bg = reduce(torch.stack(fg_terms)), reduce(torch.stack(bg_terms))
        return dict(loss_fg=self.loss_weight * self.fg_weight * fg,
                    loss_bg=self.loss_weight * self.bg_weight * bg)
