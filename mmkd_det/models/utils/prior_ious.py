"""IoU of priors (anchors or predicted boxes) with the padded GT boxes of a batch.

Shape shorthand: ``B`` images, ``P`` priors, ``G`` GT boxes per image (padded,
``valid`` marks the real ones).
"""
from typing import Optional

from torch import Tensor


def prior_ious(boxes: Tensor,
               gt: Tensor,
               valid: Optional[Tensor] = None,
               legacy_offset: bool = False) -> Tensor:
    """IoU (B, P, G) of every box with every GT box of its image.

    ``legacy_offset=False`` (default): mmdet >= 2, ``w = x2 - x1``.
    ``legacy_offset=True``: the pre-mmdet-2 / Detectron pixel convention of
    ``faster-rcnn.pytorch``'s ``bbox_overlaps_batch``: widths, heights and the
    overlap's sides all get +1 (``w = x2 - x1 + 1``; an overlap side is
    ``min(x2) - max(x1) + 1``, clipped at 0). Computed as mmdet's IoU of the
    boxes with ``x2, y2`` moved by +1, which is that formula term for term.
    Example: ``[0, 0, 4, 4]`` and ``[0, 0, 8, 4]`` have IoU 16 / 32 = 0.5,
    legacy 25 / 45 = 0.556.

    Args:
        boxes (Tensor): (P, 4) priors shared by the batch, or (B, P, 4).
        gt (Tensor): (B, G, 4) xyxy.
        valid (Tensor, optional): (B, G) bool; padded slots get IoU -1, so they
            never reach a threshold or a maximum.
        legacy_offset (bool): the +1 convention above.

    Returns:
        Tensor: (B, P, G).
    """
    from mmdet.structures.bbox import bbox_overlaps
    batch, num_gt = gt.shape[:2]
    if boxes.dim() == 2:
        boxes = boxes[None].expand(batch, -1, -1)
    if num_gt == 0:
        return boxes.new_zeros(batch, boxes.shape[1], 0)
    if legacy_offset:
        shift = boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
        boxes, gt = boxes + shift, gt + shift
    iou = bbox_overlaps(boxes.contiguous(), gt)
    if valid is not None:
        iou = iou.masked_fill(~valid[:, None, :], -1.0)
    return iou
