r"""TID: Task Integration Distillation for Object Detectors (Su, Jian, Yu, 2024).

`Paper <https://arxiv.org/abs/2404.01699>`_, §3, Eqs. 1-12. No code was
released; this is the first implementation and the paper text is its
specification. Every reading of an ambiguous passage is written next to its
equation below and is an option of :class:`TIDLoss`; configs/tid/README.md lists them
with the ablation that chose each default.

Pipeline per batch, vectorised over images (loops only over FPN levels):

* DIEM (Eqs. 1-3): for teacher and student separately, from their own head
  outputs, a task score per FPN location ``Score = Score_c x Score_r``.
* LDAM (Eqs. 4-7): key areas (top gamma of Score_T), weak areas (top gamma of
  Score_T - Score_S after NMS), ``V_output = Score_key x Score_weak``.
* SFDM (Eqs. 9-12): information value from the GT boxes,
  ``V = V_output x V_information``, three value bands, band-weighted squared
  feature difference between teacher and adapted student FPN features.

Two readings to know before using the loss:

* Eq. 12 (like Eq. 8) is printed as ``M (F^T - f(F^S))`` with neither a square
  nor a sum over channels; it is read as the squared error summed over
  channels, as the feature-decoupling losses it extends (FGD, DeFeat, FRS).
  Not an option: a plain difference is signed and has no minimum.
* Eq. 11's low band (``low_band``, :func:`value_bands`): the default
  ``'constant'`` departs from the printed ``0.05 v`` and is not monotonic in
  V; ``'scaled'`` is the printed one, ``'floor'`` a monotonic one.

The generic pieces (GT padding, prior IoU, the assigners' IoU thresholds,
top-k masks, per-level views) live in :mod:`mmkd_det.models.utils`.

Shape shorthand: ``B`` images, ``P`` priors, ``A`` priors per location,
``Q = sum_l H_l W_l`` FPN locations (level by level, row-major), ``G`` GT
boxes per image (padded to the batch maximum), ``K`` classes.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils import (TOPK_SCOPES, assigner_thresholds, decode_dense_outputs, pad_gt, prior_ious,
                     split_levels, topk_mask)
from .base_distill_loss import BaseDistillLoss

#: Eq. 1 localization scores: IoU_max >= thr_pos, between, <= thr_neg.
SCORE_R = (2.0, 1.5, 0.4)
#: Eq. 2 / Eq. 6 scores inside / outside the selected set.
SCORE_SELECTED, SCORE_OTHER = 1.5, 1.0
#: Eq. 11 value bands: (lower bound, factor) of the high and medium bands;
#: below 0.01 the factor is 0.05.
BAND_HIGH, BAND_LOW, FACTOR_MED, FACTOR_LOW = 1.0, 0.01, 0.7, 0.05
#: tie-break weight: discrete scores are ranked first, the continuous quality
#: (IoU_max x GT-class probability, in [0, 1]) only orders equal scores. Distinct
#: scores (and score differences) are >= 0.05 apart, so 1e-3 never reorders them.
TIE_BREAK = 1e-3
#: readings of Eq. 11's low band, see :func:`value_bands`.
LOW_BANDS = ('scaled', 'constant', 'floor')


# ------------------------------------------------------------------- DIEM
def localization_score(iou: Tensor,
                       pos_thr: Tensor,
                       neg_thr: Tensor,
                       num_base_priors: int,
                       mode: str = 'detector') -> Tensor:
    r"""Score_r per location (B, Q), Eq. 1.

    .. math::
        Score_r = 2 \text{ if } IOU_{max} \ge thr_{pos};\ 1.5 \text{ if }
        thr_{neg} < IOU_{max} < thr_{pos};\ 0.4 \text{ if } IOU_{max} \le thr_{neg}

    ``IOU_max`` is over the GT boxes and the location's ``A`` predicted boxes
    (one per anchor). With per-GT thresholds (ATSS) a prior is positive if its
    IoU with some GT reaches that GT's threshold and negative if it is at most
    every GT's negative threshold. ``mode='iou'`` (Table 4's alternative):
    Score_r = IOU_max itself, no binning.
    """
    batch, num_priors = iou.shape[:2]
    if iou.shape[2] == 0:
        iou_max = iou.new_zeros(batch, num_priors)
    else:
        iou_max = iou.amax(-1)
    if mode == 'iou':
        return iou_max.clamp(min=0).view(batch, -1, num_base_priors).amax(-1)
    if iou.shape[2] == 0:
        score = iou.new_full((batch, num_priors), SCORE_R[2])
    else:
        pos = (iou >= pos_thr[:, None]).any(-1)
        neg = (iou <= neg_thr[:, None]).all(-1)
        score = torch.where(
            pos, iou.new_tensor(SCORE_R[0]),
            torch.where(neg, iou.new_tensor(SCORE_R[2]), iou.new_tensor(SCORE_R[1])))
    return score.view(batch, -1, num_base_priors).amax(-1)


def gt_class_probability(scores: Tensor,
                         labels: Tensor,
                         valid: Tensor,
                         num_base_priors: int,
                         gathered: bool = False) -> Tensor:
    """Per location (B, Q): the highest probability it gives to a class that
    has a GT box in the image (max over anchors and those classes); 0 in images
    without GT.

    ``scores``: (B, P, K) probabilities of every class, or with ``gathered``
    (B, P, G) those of each GT slot's class (``decode_dense_outputs(...,
    classes=labels)``, what TIDLoss uses). Padded slots (``valid`` False) count 0.
    """
    if not gathered:
        scores = scores.gather(2, labels[:, None, :].expand(-1, scores.shape[1], -1))
    batch = scores.shape[0]
    if scores.shape[-1] == 0:
        return scores.new_zeros(batch, scores.shape[1] // num_base_priors)
    prob = scores.masked_fill(~valid[:, None, :], 0).amax(-1)  # (B, P)
    return prob.view(batch, -1, num_base_priors).amax(-1)


def classification_score(prob: Tensor, has_gt: Tensor, top: Union[int, float], scope: str,
                         level_sizes: Sequence[int]) -> Tensor:
    r"""Score_c per location (B, Q), Eq. 2: 1.5 for the top ``top`` (2.5 %)
    locations by GT-class probability (``prob``), else 1. Images without GT
    have no GT class, so no location is selected there."""
    valid = has_gt[:, None].expand_as(prob)
    sel = topk_mask(prob, top, scope, level_sizes, valid)
    return torch.where(sel, prob.new_tensor(SCORE_SELECTED), prob.new_tensor(SCORE_OTHER))


def task_score(score_c: Tensor, score_r: Tensor, tasks: Sequence[str]) -> Tensor:
    """Eq. 3: Score = Score_c x Score_r; ``tasks`` keeps one factor only for
    Table 3's ablation (the other is taken as 1)."""
    out = torch.ones_like(score_c)
    if 'cls' in tasks:
        out = out * score_c
    if 'reg' in tasks:
        out = out * score_r
    return out


# ------------------------------------------------------------------- LDAM
def key_areas(score_t: Tensor, quality_t: Tensor, gamma: Union[int, float], scope: str,
              level_sizes: Sequence[int]) -> Tensor:
    """Eq. 4: key areas = the top ``gamma`` locations of Score_T (ties in the
    discrete score broken by the teacher's continuous quality)."""
    return topk_mask(score_t + TIE_BREAK * quality_t, gamma, scope, level_sizes)


def weak_areas(score_t: Tensor,
               score_s: Tensor,
               quality_t: Tensor,
               quality_s: Tensor,
               boxes_t: Tensor,
               gamma: Union[int, float],
               scope: str,
               level_sizes: Sequence[int],
               nms_iou: Optional[float] = 0.5) -> Tensor:
    """Eq. 5: weak areas = the top ``gamma`` locations of Score_T - Score_S.

    Only locations where the teacher scores strictly higher are candidates
    (teacher == student gives no weak area). When ``nms_iou`` is set, NMS
    over the candidates' teacher boxes (per image, all levels, ranked by the
    score gap) runs first, so that a few small hard objects whose many
    locations all have large gaps do not take every slot (§3.2).
    """
    rank = (score_t - score_s) + TIE_BREAK * (quality_t - quality_s)
    cand = score_t > score_s
    if nms_iou is not None and bool(cand.any()):
        from mmcv.ops import batched_nms
        img, loc = cand.nonzero(as_tuple=True)
        _, keep = batched_nms(boxes_t[img, loc], rank[img, loc], img,
                              dict(type='nms', iou_threshold=float(nms_iou)))
        cand = torch.zeros_like(cand)
        cand[img[keep], loc[keep]] = True
    return topk_mask(rank, gamma, scope, level_sizes, valid=cand)


def output_value(score_t: Tensor,
                 key: Tensor,
                 weak: Tensor,
                 areas: Sequence[str],
                 key_mode: str = 'score') -> Tensor:
    r"""Eqs. 6-7: Value_output = Score_key x Score_weak.

    Score_key (Eq. 4, "(Score_T)_max(γ)"): ``key_mode='score'`` (default,
    literal) keeps the teacher's score on key areas and 0 elsewhere;
    ``'indicator'``: 1 on key areas, 0 elsewhere. Score_weak (Eq. 6): 1.5 on
    weak areas, 1 elsewhere. ``areas`` drops a factor (taken as 1) for
    Table 5's ablation.
    """
    out = torch.ones_like(score_t)
    if 'key' in areas:
        inside = score_t if key_mode == 'score' else torch.ones_like(score_t)
        out = out * torch.where(key, inside, torch.zeros_like(score_t))
    if 'weak' in areas:
        out = out * torch.where(weak, score_t.new_tensor(SCORE_SELECTED),
                                score_t.new_tensor(SCORE_OTHER))
    return out


# ------------------------------------------------------------------- SFDM
def information_value(centers: Tensor,
                      gt: Tensor,
                      valid: Tensor,
                      vicinity: float = 0.5,
                      decay: str = 'decreasing') -> Tensor:
    r"""V_information per location (B, Q), Eq. 9.

    1 inside a GT box (centre on or inside the border); in the vicinity β of
    the closest GT box, a function of ``r = d / dists``: ``d`` is the distance
    from the location centre to that box (0 on its border), ``dists`` the
    vicinity width, ``vicinity x max(w, h)`` of that box (at least 1 px);
    0 farther away. "Closest" is the smallest ``r``.

    ``decay='decreasing'`` (default): ``1 - r``, the text's "value decreases
    from target areas towards background" (continuous at the border).
    ``'as_printed'``: ``r``, Eq. 9 as typeset (grows with distance).
    """
    batch, num_gt = gt.shape[:2]
    if num_gt == 0:
        return centers.new_zeros(batch, centers.shape[0])
    x = centers[None, :, None, 0]
    y = centers[None, :, None, 1]
    x1, y1, x2, y2 = (gt[:, None, :, i] for i in range(4))
    dx = (x1 - x).clamp(min=0) + (x - x2).clamp(min=0)
    dy = (y1 - y).clamp(min=0) + (y - y2).clamp(min=0)
    dists = (vicinity * torch.maximum(x2 - x1, y2 - y1)).clamp(min=1.0)
    r = torch.hypot(dx, dy) / dists  # (B, Q, G)
    r = r.masked_fill(~valid[:, None, :], float('inf')).amin(-1)
    near = r <= 1
    value = (1 - r) if decay == 'decreasing' else r
    value = torch.where(near, value, torch.zeros_like(r))
    return torch.where(r == 0, torch.ones_like(r), value)


def value_bands(v: Tensor,
                alphas: Sequence[float] = (1.0, 1.0, 1.0),
                low_band: str = 'scaled') -> Tuple[Tensor, Tensor]:
    r"""Eq. 11 mask M and the Eq. 12 per-location weight.

    .. math::
        M = v \ (v \ge 1);\quad 0.7 v \ (0.01 \le v < 1);\quad 0.05 v \ (v < 0.01)

    Weight = α_high M_high + α_med M_med + α_low M_low with the bands'
    indicator-masked M. Readings of the low band (``low_band``):

    * ``'scaled'``: Eq. 11 as printed, ``0.05 v``. It is 0 wherever V = 0
      (everything off the GT vicinities and outside key areas), so background
      is never distilled.
    * ``'constant'`` (TIDLoss's default): the whole low band gets 0.05,
      "suppressed" as the text says rather than dropped. It scored higher on
      the synthetic benchmark (5.5 ± 0.2 vs 5.2 ± 0.1 mAP for ``'scaled'``, 3
      seeds, configs/tid/README.md). It is **not monotonic** in v: the medium band
      starts at 0.7 x 0.01 = 0.007, so a location with V = 0.01 weighs 7x less
      than background (0.05); every V in [0.01, 1/14) weighs less than V = 0.
    * ``'floor'``: monotonic. Below the high band M = max(0.7 v, 0.05) (the
      low band is then 0.05 as with ``'constant'``): background's 0.05 is the
      least weight of any location, and a location with more value never
      weighs less. It changes only the medium-band locations with
      0.7 v < 0.05 (v < 1/14), raising them to 0.05; it is the smallest change
      of ``'constant'`` that is monotonic. Measured level with ``'constant'``
      on the synthetic benchmark (5.6 ± 0.7 vs 5.7 ± 0.4 mAP, 3 seeds).

    Args:
        v (Tensor): values V (Eq. 10), any shape.
        alphas (Sequence[float]): α_high, α_med, α_low (bands by v).
        low_band (str): ``'scaled'``, ``'constant'`` or ``'floor'``.

    Returns:
        tuple[Tensor, Tensor]: M and the weight, both like ``v``.
    """
    high = v >= BAND_HIGH
    low = v < BAND_LOW
    if low_band == 'floor':
        m = torch.where(high, v, (FACTOR_MED * v).clamp(min=FACTOR_LOW))
    else:
        low_m = FACTOR_LOW * (v if low_band == 'scaled' else torch.ones_like(v))
        m = torch.where(high, v, torch.where(low, low_m, FACTOR_MED * v))
    a_high, a_med, a_low = alphas
    weight = torch.where(high, a_high * m, torch.where(low, a_low * m, a_med * m))
    return m, weight


@MODELS.register_module()
class TIDLoss(BaseDistillLoss):
    r"""Task Integration Distillation feature loss, Eq. 12, times ``loss_weight``.

    .. math::
        L_{fea} = \frac{1}{\sum W} \sum_{l,i,j} W_{lij}
                  \sum_c \big(F^T_{lcij} - f(F^S_l)_{cij}\big)^2,\quad
        W = \alpha_{high} M_{high} + \alpha_{med} M_{med} + \alpha_{low} M_{low}

    The square is a reading: Eq. 12 is printed as ``M (F^T - f(F^S))`` with no
    square (see the module docstring).

    Inputs (records): FPN features of both models, and each model's head
    classification and regression outputs (``bbox_head`` index 0 and 1). The
    masks are built without gradient.

    Args:
        cls_top (float | int): Eq. 2's top share, 2.5 % in the paper.
        gamma (float | int): Eqs. 4-5's γ, a fraction of locations (float) or
            a count (int) per ``topk_scope``; not given in the paper.
        topk_scope (str): where top-k (Eqs. 2, 4, 5) ranks: ``'image'``
            (default), ``'level'`` or ``'batch'``.
        tasks (tuple): DIEM factors, ``('cls', 'reg')``; Table 3 ablation.
        loc_score (str): ``'detector'`` (Eq. 1 bins) or ``'iou'`` (Table 4).
        iou_thrs (tuple, optional): ``(pos, neg)`` instead of the assigner's.
        atss_neg_ratio (float): ATSS/GFL negative rule, see
            :func:`~mmkd_det.models.utils.assigner_thresholds`.
        areas (tuple): LDAM factors, ``('key', 'weak')``; Table 5 ablation.
        key_mode (str): ``'score'`` or ``'indicator'``, see :func:`output_value`.
        weak_nms_iou (float | None): NMS IoU of weak areas; None disables.
        vicinity (float): GT vicinity width relative to max(w, h), Eq. 9.
        info_decay (str): ``'decreasing'`` or ``'as_printed'``, Eq. 9.
        band_alphas (tuple): α_high, α_med, α_low of Eq. 12.
        low_band (str): ``'constant'`` (default, chosen by the synthetic
            ablation in configs/tid/README.md; not monotonic in V), ``'scaled'`` (Eq. 11
            literally) or ``'floor'`` (monotonic, level with the default), see
            :func:`value_bands`.
        normalize (str): ``'mask'``: divide by the sum of W over the batch
            (as FRS's N_l, so α-like loss weights transfer); ``'batch'``:
            divide by the number of images (FGD's convention).
        head (str): dense head attribute of both detectors.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default: a 1x1
            conv per level, the f of Eq. 8), ``resize_student``.
    """

    default_inputs = dict(
        s_feats='student.fpn',
        t_feats='teacher.fpn',
        s_cls='student.cls',
        t_cls='teacher.cls',
        s_reg='student.reg',
        t_reg='teacher.reg')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=1)

    def __init__(self,
                 cls_top: Union[int, float] = 0.025,
                 gamma: Union[int, float] = 0.1,
                 topk_scope: str = 'image',
                 tasks: Sequence[str] = ('cls', 'reg'),
                 loc_score: str = 'detector',
                 iou_thrs: Optional[Sequence[float]] = None,
                 atss_neg_ratio: float = 0.8,
                 areas: Sequence[str] = ('key', 'weak'),
                 key_mode: str = 'score',
                 weak_nms_iou: Optional[float] = 0.5,
                 vicinity: float = 0.5,
                 info_decay: str = 'decreasing',
                 band_alphas: Sequence[float] = (1.0, 1.0, 1.0),
                 low_band: str = 'constant',
                 normalize: str = 'mask',
                 head: str = 'bbox_head',
                 **kwargs):
        super().__init__(**kwargs)
        choices = dict(
            topk_scope=(topk_scope, TOPK_SCOPES),
            loc_score=(loc_score, ('detector', 'iou')),
            key_mode=(key_mode, ('score', 'indicator')),
            info_decay=(info_decay, ('decreasing', 'as_printed')),
            low_band=(low_band, LOW_BANDS),
            normalize=(normalize, ('mask', 'batch')))
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f'TIDLoss {key}={value!r}; choose one of {allowed}.')
        tasks = (tasks, ) if isinstance(tasks, str) else tasks
        areas = (areas, ) if isinstance(areas, str) else areas
        for key, value, allowed in (('tasks', tasks, ('cls', 'reg')), ('areas', areas, ('key',
                                                                                        'weak'))):
            if not value or set(value) - set(allowed):
                raise ValueError(f'TIDLoss {key}={value!r}: a non-empty subset of {allowed}.')
        for key, value in (('cls_top', cls_top), ('gamma', gamma)):
            ok = (isinstance(value, float) and 0 < value <= 1) or \
                 (isinstance(value, int) and value >= 1)
            if not ok:
                raise ValueError(f'TIDLoss {key}={value!r}: a fraction in (0, 1] (float) '
                                 f'or a count >= 1 (int).')
        if len(band_alphas) != 3:
            raise ValueError('TIDLoss band_alphas needs three values (high, med, low).')
        self.cls_top, self.gamma, self.topk_scope = cls_top, gamma, topk_scope
        self.tasks, self.loc_score, self.iou_thrs = tuple(tasks), loc_score, iou_thrs
        self.atss_neg_ratio, self.areas, self.key_mode = atss_neg_ratio, tuple(areas), key_mode
        self.weak_nms_iou, self.vicinity, self.info_decay = weak_nms_iou, vicinity, info_decay
        self.band_alphas, self.low_band = tuple(band_alphas), low_band
        self.normalize, self.head = normalize, head

    def check_detectors(self, student, teacher) -> None:
        """Both detectors need the dense head :meth:`_head` reads (at build, not at the
        first step: e.g. a two-stage teacher whose records are RoI-free)."""
        self._head(student, 'student')
        self._head(teacher, 'teacher')

    def _head(self, model, role: str):
        head = getattr(model, self.head, None)
        if head is None or not hasattr(head, 'prior_generator'):
            raise ValueError(f'TIDLoss needs a dense head `{self.head}` on the {role} '
                             f'(RetinaNet, ATSS, GFL, FCOS; `rpn_head` for two-stage).')
        return head

    def _dual_task(self, head, cls: Sequence[Tensor], reg: Sequence[Tensor], gt: Tensor,
                   labels: Tensor, valid: Tensor) -> Dict[str, Tensor]:
        """DIEM (Eqs. 1-3) for one detector; also its per-location box and quality."""
        out = decode_dense_outputs(head, cls, reg, classes=labels)  # (B, P, G) scores
        a = out.num_base_priors
        iou = prior_ious(out.boxes, gt, valid)
        pos, neg = assigner_thresholds(head, out, gt, self.iou_thrs, self.atss_neg_ratio)
        score_r = localization_score(iou, pos, neg, a, self.loc_score)  # Eq. 1
        prob = gt_class_probability(out.scores, labels, valid, a, gathered=True)
        score_c = classification_score(prob, valid.any(1), self.cls_top, self.topk_scope,
                                       out.level_sizes)  # Eq. 2
        iou_max = iou.amax(-1).clamp(min=0) if iou.shape[2] else iou.new_zeros(iou.shape[:2])
        iou_loc = iou_max.view(iou_max.shape[0], -1, a)
        best = iou_loc.argmax(-1)
        boxes = out.per_location(out.boxes).gather(2, best[..., None, None].expand(-1, -1, 1,
                                                                                   4)).squeeze(2)
        return dict(
            score=task_score(score_c, score_r, self.tasks),  # Eq. 3
            quality=iou_loc.amax(-1) * prob,
            boxes=boxes,
            score_c=score_c,
            score_r=score_r,
            centers=out.centers,
            level_sizes=out.level_sizes)

    @torch.no_grad()
    def masks(self, s_cls: Sequence[Tensor], t_cls: Sequence[Tensor], s_reg: Sequence[Tensor],
              t_reg: Sequence[Tensor], gt_instances, student, teacher) -> Dict[str, Tensor]:
        """Every intermediate map of Eqs. 1-11, each (B, Q) (use
        :func:`~mmkd_det.models.utils.split_levels` with ``shapes`` for per-level maps)."""
        gt, labels, valid = pad_gt(gt_instances, t_cls[0].device)
        t = self._dual_task(self._head(teacher, 'teacher'), t_cls, t_reg, gt, labels, valid)
        s = self._dual_task(self._head(student, 'student'), s_cls, s_reg, gt, labels, valid)
        if t['level_sizes'] != s['level_sizes']:
            raise ValueError(f'TIDLoss: teacher and student heads have different locations '
                             f'per level ({t["level_sizes"]} vs {s["level_sizes"]}); they '
                             f'need the same strides and input size.')
        sizes = t['level_sizes']
        key = key_areas(t['score'], t['quality'], self.gamma, self.topk_scope, sizes)
        weak = weak_areas(t['score'], s['score'], t['quality'], s['quality'], t['boxes'],
                          self.gamma, self.topk_scope, sizes, self.weak_nms_iou)
        v_out = output_value(t['score'], key, weak, self.areas, self.key_mode)  # Eq. 7
        v_info = information_value(t['centers'], gt, valid, self.vicinity, self.info_decay)  # Eq. 9
        value = v_out * v_info  # Eq. 10
        m, weight = value_bands(value, self.band_alphas, self.low_band)  # Eq. 11
        return dict(
            score_t=t['score'],
            score_s=s['score'],
            key=key.float(),
            weak=weak.float(),
            v_output=v_out,
            v_information=v_info,
            value=value,
            m=m,
            weight=weight,
            shapes=[tuple(c.shape[-2:]) for c in t_cls])

    def visual_maps(self, s_cls, t_cls, s_reg, t_reg, gt_instances, student, teacher,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W) maps of Fig. 4: key, weak, information value, M."""
        m = self.masks(s_cls, t_cls, s_reg, t_reg, gt_instances, student, teacher)
        names = dict(
            key='key area (Eq. 4)',
            weak='weak area (Eq. 5)',
            v_information='V_information (Eq. 9)',
            m='M (Eq. 11)')
        return {title: split_levels(m[k], m['shapes']) for k, title in names.items()}

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], s_cls: Sequence[Tensor],
                t_cls: Sequence[Tensor], s_reg: Sequence[Tensor], t_reg: Sequence[Tensor], *,
                gt_instances, student, teacher) -> Tensor:
        if len(t_feats) != len(t_cls):
            raise ValueError(f'TIDLoss: {len(t_feats)} feature levels but {len(t_cls)} head '
                             f'levels; record the neck outputs the head reads.')
        weight = self.masks(s_cls, t_cls, s_reg, t_reg, gt_instances, student, teacher)['weight']
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        sq = torch.cat([e.flatten(1) for e in self.squared_error_maps(s_feats, t_feats)],
                       dim=1)  # (B, Q)
        if sq.shape != weight.shape:
            raise ValueError(f'TIDLoss: features give {sq.shape[1]} locations, the head '
                             f'{weight.shape[1]}; record the neck levels the head reads.')
        total = (weight * sq).sum()
        norm = weight.sum().clamp(min=1e-12) if self.normalize == 'mask' else sq.shape[0]
        return self.loss_weight * total / norm
