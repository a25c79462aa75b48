"""Batched label assignment of priors to padded GT boxes, as mmdet's IoU assigners do.

Losses that work on "the anchors assigned to a GT" (ICD's rank mimicking) need the
detector's positive assignment without running its per-image assigner. This module
reproduces the positive part of mmdet's ``MaxIoUAssigner`` on a whole batch and the
anchor flags of ``AnchorHead.get_targets``.

Shape shorthand: ``B`` images, ``P`` priors of all levels (mmdet's order: level,
row, column, base anchor), ``G`` GT boxes per image (padded; ``valid`` marks the
real ones).
"""
from typing import Optional, Sequence

import torch
from torch import Tensor


def max_iou_assign(iou: Tensor,
                   pos_thr: Tensor,
                   valid: Optional[Tensor] = None,
                   prior_valid: Optional[Tensor] = None,
                   min_pos_iou: Optional[float] = None,
                   gt_max_assign_all: bool = True) -> Tensor:
    r"""Index of the GT each prior is assigned to as a positive, else -1; (B, P).

    Step 1 (``MaxIoUAssigner`` step 3, generalised to per-GT thresholds):
    prior ``p`` is a positive of

    .. math::
        g^* = \arg\max_{g:\ IoU_{pg} \ge thr_g} IoU_{pg}

    (the first such GT on ties); with one threshold for every GT this is mmdet's
    "argmax over the GTs, positive if the maximum reaches ``pos_iou_thr``".

    Step 2 (low-quality matches, when ``min_pos_iou`` is not None): every GT
    ``g`` whose best IoU over the (valid) priors ``m_g`` is at least
    ``min_pos_iou`` also takes the priors with ``IoU_{pg} = m_g``
    (``gt_max_assign_all``; else only the first of them), overwriting step 1,
    later GTs overwriting earlier ones, as mmdet's loop over the GTs.

    Args:
        iou (Tensor): (B, P, G) IoU of every prior with every GT slot.
        pos_thr (Tensor): (B, G) positive IoU threshold per GT.
        valid (Tensor, optional): (B, G) bool, the real GT slots.
        prior_valid (Tensor, optional): (B, P) bool, priors the assigner sees
            (mmdet's ``inside_flags``); the others are never assigned and do not
            count for ``m_g``.
        min_pos_iou (float, optional): low-quality matching threshold; None
            switches step 2 off (``match_low_quality=False``).
        gt_max_assign_all (bool): step 2 takes every prior tied at ``m_g``.

    Returns:
        Tensor: (B, P) long, a GT slot index or -1.
    """
    batch, num_priors, num_gt = iou.shape
    if num_gt == 0:
        return torch.full((batch, num_priors), -1, dtype=torch.long, device=iou.device)
    usable = torch.ones_like(iou, dtype=torch.bool)
    if valid is not None:
        usable = usable & valid[:, None, :]
    if prior_valid is not None:
        usable = usable & prior_valid[:, :, None]
    iou = iou.masked_fill(~usable, -1.0)
    eligible = usable & (iou >= pos_thr[:, None, :])
    best = iou.masked_fill(~eligible, -2.0).argmax(-1)  # (B, P)
    assigned = torch.where(eligible.any(-1), best, best.new_full((), -1))
    if min_pos_iou is None:
        return assigned
    gt_max, gt_arg = iou.max(dim=1)  # (B, G) over priors
    strong = usable.any(1) & (gt_max >= min_pos_iou)  # (B, G)
    if gt_max_assign_all:
        low = (iou == gt_max[:, None, :]) & usable
    else:
        low = torch.zeros_like(usable).scatter_(1, gt_arg[:, None, :], True) & usable
    low = low & strong[:, None, :]
    slots = torch.arange(num_gt, device=iou.device)
    last = torch.where(low, slots, slots.new_full((), -1)).amax(-1)  # the last GT wins
    return torch.where(last >= 0, last, assigned)


def anchor_valid_flags(prior_generator,
                       featmap_sizes: Sequence,
                       batch_img_metas: Sequence[dict],
                       priors: Tensor,
                       allowed_border: float = -1) -> Tensor:
    """The anchors ``AnchorHead.get_targets`` lets the assigner see, (B, P) bool.

    Per image: the generator's ``valid_flags`` for the image's ``pad_shape``
    (anchors on feature cells beyond the image's own padded size are off), and
    with ``allowed_border >= 0`` also mmdet's ``anchor_inside_flags`` (the anchor
    within ``allowed_border`` pixels of ``img_shape``). An image meta without
    ``pad_shape`` gets every anchor (as in a batch of equal sizes).

    Args:
        prior_generator: the head's anchor generator.
        featmap_sizes (Sequence): (H, W) per level.
        batch_img_metas (Sequence[dict]): per image; ``pad_shape``, ``img_shape``.
        priors (Tensor): (P, 4) anchors of all levels (for the border test).
        allowed_border (float): the head's ``train_cfg.allowed_border``.
    """
    flags = []
    for meta in batch_img_metas:
        pad = meta.get('pad_shape')
        if pad is None:
            flag = torch.ones(priors.shape[0], dtype=torch.bool, device=priors.device)
        else:
            flag = torch.cat(
                prior_generator.valid_flags([tuple(s) for s in featmap_sizes],
                                            tuple(pad[:2]),
                                            device=priors.device))
        if allowed_border >= 0 and 'img_shape' in meta:
            h, w = meta['img_shape'][:2]
            flag = flag & (priors[:, 0] >= -allowed_border) & \
                (priors[:, 1] >= -allowed_border) & \
                (priors[:, 2] < w + allowed_border) & (priors[:, 3] < h + allowed_border)
        flags.append(flag)
    return torch.stack(flags)
