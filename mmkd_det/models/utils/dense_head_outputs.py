"""Decode the raw forward outputs of an mmdet dense head, batched.

Losses that read what a detector *predicts* at each FPN location (TID, FGFI,
LD, ...) need, per prior, the class probabilities and the decoded box. mmdet
decodes per image inside ``predict_by_feat``/``loss_by_feat``; this module does
the same on the whole batch with the head's own prior generator, box coder
and (for GFL) integral, without NMS or score filtering.

Shape shorthand: ``B`` images, ``P`` priors over all levels (ordered level by
level, then row, column, base prior - mmdet's order), ``A`` priors per
location, ``Q = P / A`` locations, ``K`` classes.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from .fpn_levels import level_strides


@dataclass
class DenseOutputs:
    """Per-prior predictions of one detector on one batch.

    Attributes:
        scores (Tensor): (B, P, K) sigmoid class probabilities ((B, P, G) when
            decoded with ``classes``).
        boxes (Tensor): (B, P, 4) decoded boxes, xyxy, input-image pixels.
        priors (Tensor): (P, 4) anchor boxes, or (P, 4) zero-size boxes at the
            points of an anchor-free head.
        centers (Tensor): (Q, 2) location centres in pixels.
        level_sizes (list[int]): locations per level (H * W).
        num_base_priors (int): A.
    """
    scores: Tensor
    boxes: Tensor
    priors: Tensor
    centers: Tensor
    level_sizes: List[int]
    num_base_priors: int

    def per_location(self, t: Tensor) -> Tensor:
        """View a (B, P, ...) tensor as (B, Q, A, ...)."""
        return t.view(t.shape[0], -1, self.num_base_priors, *t.shape[2:])


def _flatten(maps: Sequence[Tensor], last: int) -> Tensor:
    """Per-level (B, A * last, H, W) maps -> (B, P, last) in mmdet's prior order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, last) for m in maps], 1)


def _decode(head, priors: Tensor, preds: Tensor) -> Tensor:
    """Batched decode through the head's coder, as 2-D calls (mmdet's 3-D path
    of the delta coder is the deprecated ONNX one)."""
    batch = preds.shape[0]
    flat = priors.repeat(batch, 1)
    boxes = head.bbox_coder.decode(flat, preds.reshape(flat.shape[0], -1))
    if hasattr(boxes, 'tensor'):  # BaseBoxes
        boxes = boxes.tensor
    return boxes.view(batch, -1, 4)


def gather_classes(cls_scores: Sequence[Tensor], classes: Tensor, num_classes: int) -> List[Tensor]:
    """Per level (B, A * K, H, W) logits -> (B, A * G, H, W): for each image only
    the channels of its ``classes`` (B, G) (channel ``a K + c`` of anchor ``a``,
    class ``c``, mmdet's layout), in the same anchor-major order."""
    out = []
    for m in cls_scores:
        batch, channels, h, w = m.shape
        anchors = channels // num_classes
        idx = (torch.arange(anchors, device=m.device)[None, :, None] * num_classes +
               classes[:, None, :]).reshape(batch, -1)  # (B, A * G)
        out.append(m.gather(1, idx[:, :, None, None].expand(-1, -1, h, w)))
    return out


def decode_dense_outputs(head,
                         cls_scores: Sequence[Tensor],
                         bbox_preds: Sequence[Tensor],
                         classes: Optional[Tensor] = None) -> DenseOutputs:
    """Probabilities and decoded boxes of every prior of a dense head.

    Supports mmdet's anchor heads with a delta coder (RetinaNet, ATSS, RPN),
    GFL (distribution -> integral -> distances in strides) and anchor-free
    point heads with a distance coder (FCOS). Centerness/IoU branches are not
    used: scores are the classifier's sigmoid.

    Args:
        head: the mmdet dense head that produced the outputs.
        cls_scores (list[Tensor]): per level (B, A * K, H, W) logits.
        bbox_preds (list[Tensor]): per level regression outputs as returned
            by ``head.forward``.
        classes (Tensor, optional): (B, G) class indices. When given, ``scores``
            holds only these columns, (B, P, G) (``scores[b, p, g]`` = the
            probability of class ``classes[b, g]``), gathered from the logits
            before flattening and the sigmoid: with 80 COCO classes and a few
            GT classes per image this skips most of the (B, P, K) work.
    """
    from mmdet.models.dense_heads import AnchorFreeHead, GFLHead
    if not getattr(head, 'use_sigmoid_cls', True):
        raise ValueError(f'{type(head).__name__} uses a softmax classifier; mask-building '
                         f'losses need per-class sigmoid scores (use_sigmoid=True).')
    sizes = [tuple(c.shape[-2:]) for c in cls_scores]
    dev, dtype = cls_scores[0].device, cls_scores[0].dtype
    num_classes = head.cls_out_channels
    if classes is not None and classes.shape[1] == 0:  # no GT in the batch
        priors = sum(c.shape[1] // num_classes * h * w for c, (h, w) in zip(cls_scores, sizes))
        scores = cls_scores[0].new_zeros(cls_scores[0].shape[0], priors, 0)
    else:
        if classes is not None:
            cls_scores = gather_classes(cls_scores, classes, num_classes)
            num_classes = classes.shape[1]
        scores = _flatten(cls_scores, num_classes).detach().sigmoid()
    level_sizes = [h * w for h, w in sizes]
    strides = level_strides(head.prior_generator.strides)

    if isinstance(head, AnchorFreeHead):  # FCOS-like, points
        points = torch.cat(head.prior_generator.grid_priors(sizes, dtype=dtype, device=dev))
        dist = _flatten(bbox_preds, 4).detach()
        if getattr(head, 'norm_on_bbox', False) and head.training:
            # FCOS multiplies by the stride only in eval mode (fcos_head.py)
            level_stride = torch.cat(
                [points.new_full((n, ), s) for n, s in zip(level_sizes, strides)])
            dist = dist * level_stride[None, :, None]
        boxes = _decode(head, points, dist)
        priors = torch.cat([points, points], dim=1)
        return DenseOutputs(scores, boxes, priors, points, level_sizes, 1)

    anchors_lvl = head.prior_generator.grid_priors(sizes, dtype=dtype, device=dev)
    anchors = torch.cat(anchors_lvl)
    a = head.num_base_priors
    centers = torch.cat([(x[::a, :2] + x[::a, 2:]) / 2 for x in anchors_lvl])
    batch = scores.shape[0]
    if isinstance(head, GFLHead):
        reg = head.reg_max + 1
        dist = head.integral(_flatten(bbox_preds, 4 * reg).detach().reshape(-1, 4 * reg))
        level_stride = torch.cat(
            [anchors.new_full((n * a, ), s) for n, s in zip(level_sizes, strides)])
        dist = dist.view(batch, -1, 4) * level_stride[None, :, None]
        anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2
        boxes = _decode(head, anchor_centers, dist)
    else:
        deltas = _flatten(bbox_preds, head.bbox_coder.encode_size).detach()
        boxes = _decode(head, anchors, deltas)
    return DenseOutputs(scores, boxes, anchors, centers, level_sizes, a)
