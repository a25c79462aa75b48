"""Per-GT positive / negative IoU thresholds of a detector's label assigner.

Losses that bin the IoU of a prior the way the detector's own assigner does
(TID's Eq. 1) read the thresholds here. Shape shorthand: ``B`` images, ``P``
priors, ``G`` GT boxes per image (padded).
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .dense_head_outputs import DenseOutputs
from .prior_ious import prior_ious


def assigner_thresholds(head,
                        out: DenseOutputs,
                        gt: Tensor,
                        fixed: Optional[Sequence[float]] = None,
                        atss_neg_ratio: float = 0.8,
                        name: str = 'TIDLoss') -> Tuple[Tensor, Tensor]:
    """Per-GT positive and negative IoU thresholds (B, G) of the detector.

    * ``fixed=(pos, neg)``: used as given (FCOS has no IoU assigner).
    * ``MaxIoUAssigner`` (RetinaNet): its ``pos_iou_thr`` / ``neg_iou_thr``
      (upper bound when ``neg_iou_thr`` is a range).
    * ``ATSSAssigner`` (ATSS, GFL): positive = the per-GT adaptive threshold
      (:func:`atss_thresholds`); ATSS has no negative threshold, so the
      documented rule is ``neg = atss_neg_ratio x pos`` (0.8 = RetinaNet's
      0.4 / 0.5; 1.0 leaves no middle band, ATSS's own split).

    Args:
        head: the mmdet dense head (its ``train_cfg.assigner`` is read).
        out (DenseOutputs): the head's decoded priors.
        gt (Tensor): (B, G, 4) padded GT boxes.
        fixed (Sequence[float], optional): ``(pos, neg)``.
        atss_neg_ratio (float): the ATSS negative rule.
        name (str): the loss, for the error message (it must offer ``iou_thrs``).

    Raises:
        ValueError: another assigner and no ``fixed``; the message names ``iou_thrs``.
    """
    shape = gt.shape[:2]
    if fixed is not None:
        return gt.new_full(shape, float(fixed[0])), gt.new_full(shape, float(fixed[1]))
    assigner = (getattr(head, 'train_cfg', None) or {}).get('assigner', {})
    kind = assigner.get('type', None)
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
    if kind == 'MaxIoUAssigner':
        neg = assigner['neg_iou_thr']
        neg = max(neg) if isinstance(neg, (tuple, list)) else neg
        return gt.new_full(shape, float(assigner['pos_iou_thr'])), gt.new_full(shape, float(neg))
    if kind == 'ATSSAssigner':
        pos = atss_thresholds(out.priors, [n * out.num_base_priors for n in out.level_sizes], gt,
                              assigner.get('topk', 9))
        return pos, pos * atss_neg_ratio
    raise ValueError(f'{name} reads IoU thresholds from the detector assigner (MaxIoUAssigner or '
                     f'ATSSAssigner) but {type(head).__name__} has assigner {kind!r}. Set '
                     f'iou_thrs=(pos, neg) on the {name} (e.g. (0.5, 0.4)).')


def atss_thresholds(priors: Tensor, level_num_priors: Sequence[int], gt: Tensor,
                    topk: int) -> Tensor:
    """ATSS adaptive IoU threshold per GT, (B, G).

    mean + std (unbiased, as ``torch.std``) of the IoUs of the ``topk`` priors
    per level whose centres are closest to the GT centre: mmdet's
    ``ATSSAssigner`` rule, batched over images and GT boxes.

    Args:
        priors (Tensor): (P, 4) priors of all levels, level by level.
        level_num_priors (Sequence[int]): priors per level.
        gt (Tensor): (B, G, 4).
        topk (int): candidates per level.
    """
    batch, num_gt = gt.shape[:2]
    if num_gt == 0:
        return gt.new_zeros(batch, 0)
    overlaps = prior_ious(priors, gt)  # (B, P, G)
    p_ctr = (priors[:, :2] + priors[:, 2:]) / 2
    g_ctr = (gt[..., :2] + gt[..., 2:]) / 2
    dist = (p_ctr[None, :, None] - g_ctr[:, None]).pow(2).sum(-1).sqrt()  # (B, P, G)
    cands, start = [], 0
    for n in level_num_priors:
        idx = dist[:, start:start + n].topk(min(topk, n), dim=1, largest=False).indices
        cands.append(overlaps.gather(1, idx + start))
        start += n
    cand = torch.cat(cands, dim=1)  # (B, k*L, G)
    std = cand.std(1) if cand.shape[1] > 1 else torch.zeros_like(cand[:, 0])
    return cand.mean(1) + std
