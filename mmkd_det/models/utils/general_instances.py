r"""General instances (GID's general instance selection module, GISM) of a dense head.

Dai et al., "General Instance Distillation for Object Detection" (CVPR 2021,
arXiv:2103.02340) select the regions to distil from the *predictions* of teacher and
student, without the ground truth: every prior (anchor) of a dense head is a
predicted instance ``r`` with class probabilities :math:`P^{r}_{t}, P^{r}_{s}` and
a decoded box :math:`B^{r}_{t}, B^{r}_{s}`, scored by how much the two detectors
disagree (the GI score) and located by the box of the more confident one (the GI
box). NMS removes duplicates and the top ``K`` per image are the general instances.

Shape shorthand: ``B`` images, ``P`` priors of all levels (mmdet's order), ``K``
classes (1 for an RPN), ``N`` the kept instances per image (at most ``topk``).
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

#: GI score readings: the paper's (max over classes of the absolute difference) and
#: the first author's released detectron2 code (absolute difference of the maxima).
GI_SCORES = ('max_abs_diff', 'abs_max_diff')


@dataclass
class GeneralInstances:
    """The selected general instances of a batch.

    Attributes:
        rois (Tensor): (R, 5) ``(image index, x1, y1, x2, y2)``, images in order,
            each image's instances by descending GI score (``bbox2roi`` layout).
        scores (Tensor): (R,) their GI scores.
        boxes (Tensor): (B, N, 4) the same boxes padded per image (``N = topk``).
        valid (Tensor): (B, N) bool, the real slots of ``boxes``.
    """
    rois: Tensor
    scores: Tensor
    boxes: Tensor
    valid: Tensor


def gi_score_and_box(t_scores: Tensor,
                     s_scores: Tensor,
                     t_boxes: Tensor,
                     s_boxes: Tensor,
                     score: str = 'max_abs_diff'):
    r"""GI score and GI box of every predicted instance (GID, GISM).

    .. math::
        P^{r}_{GI} = \max_{0 < c \le K} \big| P^{rc}_{t} - P^{rc}_{s} \big|
        \qquad (\texttt{'max\_abs\_diff'})

        P^{r}_{GI} = \big| \max_{c} P^{rc}_{t} - \max_{c} P^{rc}_{s} \big|
        \qquad (\texttt{'abs\_max\_diff'}, \text{the released code})

        B^{r}_{GI} = B^{r}_{t} \ \text{if}\ \max_c P^{rc}_{t} > \max_c P^{rc}_{s},
        \ \text{else}\ B^{r}_{s}

    With one class (an RPN's objectness) both readings coincide.

    Args:
        t_scores (Tensor): (B, P, K) teacher probabilities.
        s_scores (Tensor): (B, P, K) student probabilities.
        t_boxes (Tensor): (B, P, 4) teacher boxes.
        s_boxes (Tensor): (B, P, 4) student boxes.
        score (str): one of :data:`GI_SCORES`.

    Returns:
        tuple: (B, P) GI scores and (B, P, 4) GI boxes, detached.
    """
    if score not in GI_SCORES:
        raise ValueError(f'gi_score must be one of {GI_SCORES}, got {score!r}.')
    if t_scores.shape != s_scores.shape or t_boxes.shape != s_boxes.shape:
        raise ValueError(f'GISM: teacher and student predict different priors or classes: '
                         f'scores {tuple(t_scores.shape)} vs {tuple(s_scores.shape)}, boxes '
                         f'{tuple(t_boxes.shape)} vs {tuple(s_boxes.shape)}; both detectors need '
                         f'the same anchor generator and num_classes.')
    t_scores, s_scores = t_scores.detach(), s_scores.detach()
    t_max, s_max = t_scores.max(-1).values, s_scores.max(-1).values
    if score == 'max_abs_diff':
        gi_score = (t_scores - s_scores).abs().max(-1).values
    else:
        gi_score = (t_max - s_max).abs()
    gi_box = torch.where((t_max > s_max)[..., None], t_boxes.detach(), s_boxes.detach())
    return gi_score, gi_box


def select_general_instances(gi_score: Tensor,
                             gi_box: Tensor,
                             img_shapes: Optional[Sequence] = None,
                             pre_nms_topk: int = 3000,
                             nms_iou: float = 0.3,
                             topk: int = 10,
                             min_size: float = 0.0) -> GeneralInstances:
    """Top-``topk`` non-overlapping general instances per image.

    Per image, in the order of the released code's proposal selection
    (detectron2's ``find_top_rpn_proposals`` on one level): the ``pre_nms_topk``
    highest GI scores; boxes clipped to the image (``img_shapes``); boxes with a
    side not above ``min_size`` pixels or non-finite values dropped; NMS at IoU
    ``nms_iou``; the ``topk`` highest kept.

    Host synchronisation: the boolean filtering and the NMS (one call for the
    whole batch, images kept apart by index) have data-dependent sizes.

    Args:
        gi_score (Tensor): (B, P) GI scores.
        gi_box (Tensor): (B, P, 4) GI boxes, xyxy pixels.
        img_shapes (Sequence, optional): per image ``(h, w)``; None: no clipping.
        pre_nms_topk (int): candidates per image before NMS.
        nms_iou (float): NMS IoU threshold.
        topk (int): instances kept per image (``K`` of the paper).
        min_size (float): boxes whose width or height is not above ``min_size``
            pixels are dropped (detectron2's ``nonempty(threshold)``; 0: empty boxes).

    Returns:
        GeneralInstances: detached.
    """
    from mmcv.ops import batched_nms
    gi_score, gi_box = gi_score.detach(), gi_box.detach()
    batch, num = gi_score.shape
    k = min(int(pre_nms_topk), num)
    score, idx = gi_score.topk(k, dim=1)  # (B, k), descending
    box = gi_box.gather(1, idx[..., None].expand(-1, -1, 4)).clone()
    if img_shapes is not None:
        size = box.new_tensor([[float(s[1]), float(s[0])] for s in img_shapes])  # (B, 2) w, h
        box[..., 0::2] = torch.minimum(box[..., 0::2].clamp(min=0), size[:, None, 0:1])
        box[..., 1::2] = torch.minimum(box[..., 1::2].clamp(min=0), size[:, None, 1:2])
    side = torch.minimum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    keep = torch.isfinite(box).all(-1) & torch.isfinite(score) & (side > min_size)
    image = torch.arange(batch, device=box.device)[:, None].expand(-1, k)
    flat_box, flat_score, flat_img = box[keep], score[keep], image[keep]
    boxes = box.new_zeros(batch, topk, 4)
    valid = torch.zeros(batch, topk, dtype=torch.bool, device=box.device)
    if flat_box.shape[0] == 0 or topk <= 0:
        return GeneralInstances(box.new_zeros(0, 5), score.new_zeros(0), boxes, valid)
    _, kept = batched_nms(flat_box, flat_score, flat_img,
                          dict(type='nms', iou_threshold=float(nms_iou)))
    # kept: descending score over the batch; a stable sort by image keeps each
    # image's instances in descending order
    order = torch.sort(flat_img[kept], stable=True).indices
    kept = kept[order]
    img = flat_img[kept]
    first = torch.searchsorted(img, img, right=False)
    rank = torch.arange(img.shape[0], device=img.device) - first
    sel = rank < topk
    kept, img, rank = kept[sel], img[sel], rank[sel]
    boxes[img, rank] = flat_box[kept]
    valid[img, rank] = True
    rois = torch.cat([img[:, None].to(flat_box.dtype), flat_box[kept]], dim=1)
    return GeneralInstances(rois, flat_score[kept], boxes, valid)
