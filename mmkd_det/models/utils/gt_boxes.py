"""Ground-truth boxes of a batch as padded tensors.

Mask-building losses (DeFeat, FGD, FGFI, TID) vectorise over images, so the
per-image ``InstanceData`` of a batch are stacked into fixed-size tensors: ``B``
images, ``G`` = the largest number of GT boxes of any image, the missing slots
zero-filled and marked invalid.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor


def pad_gt(gt_instances: Sequence, device) -> Tuple[Tensor, Tensor, Tensor]:
    """Stack the GT boxes and labels of a batch, zero-padded to the largest image.

    Args:
        gt_instances (Sequence[InstanceData]): per image, with ``bboxes`` (a
            (n, 4) xyxy tensor or mmdet ``BaseBoxes``) and ``labels`` (n,).
        device: device of the returned tensors.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes (B, G, 4) float, labels (B, G) long
        and validity (B, G) bool; padded slots hold zeros, label 0 and False.
    """
    boxes = [getattr(g.bboxes, 'tensor', g.bboxes).to(device).float() for g in gt_instances]
    num = max([len(b) for b in boxes] + [0])
    batch = len(boxes)
    out = torch.zeros(batch, num, 4, device=device)
    labels = torch.zeros(batch, num, dtype=torch.long, device=device)
    valid = torch.zeros(batch, num, dtype=torch.bool, device=device)
    for i, (b, g) in enumerate(zip(boxes, gt_instances)):
        out[i, :len(b)] = b
        labels[i, :len(b)] = g.labels.to(device)
        valid[i, :len(b)] = True
    return out, labels, valid
