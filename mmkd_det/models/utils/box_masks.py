"""Binary masks of GT boxes on strided feature maps, one level per box."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def gt_box_masks(boxes: Tensor, valid: Tensor, levels: Tensor,
                 featmap_sizes: Sequence[Tuple[int, int]], strides: Sequence[int]) -> List[Tensor]:
    """Binary GT masks, one (B, H, W) float 0/1 map per level (DeFeat's ``get_gt_mask``).

    A box assigned to level ``l`` covers, on that level only, the cells
    ``[int(y1/s), min(int(y2/s), H)) x [int(x1/s), min(int(x2/s), W))`` (end
    exclusive, start clipped at 0, ``s`` the level stride, ``int`` truncation).
    When that window is empty along an axis (a box thinner than a cell) only the
    cell ``(int(y1/s), int(x1/s))`` is set, as in DeFeat's code (clipped into
    the map here, where the original would index past its border). Overlapping
    boxes give 1 (union). Padded boxes (``valid`` False) set nothing.

    Each mask is the union of separable windows, computed as one batched matrix
    product of per-box row and column indicators (no loop over boxes).

    Args:
        boxes (Tensor): (B, G, 4) xyxy in the input image frame.
        valid (Tensor): (B, G) bool.
        levels (Tensor): (B, G) level of every box
            (:func:`~mmkd_det.models.utils.map_gt_levels`).
        featmap_sizes: (H, W) per level.
        strides: stride per level.

    Returns:
        list[Tensor]: per level (B, H, W).
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
                           (ys >= y1[..., None]) & (ys < y2[..., None]))  # (B, G, H)
        cols = torch.where(degenerate, xs == x1.clamp(max=w - 1)[..., None],
                           (xs >= x1[..., None]) & (xs < x2[..., None]))  # (B, G, W)
        keep = (valid & (levels == lvl))[..., None].float()
        hits = torch.einsum('bgh,bgw->bhw', rows.float() * keep, cols.float())
        masks.append((hits > 0).float())
    return masks
