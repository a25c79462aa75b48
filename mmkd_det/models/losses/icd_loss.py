r"""ICD: Li, Li, Wang, Zhang, Wu, Liang, "Knowledge Distillation for Object Detection
via Rank Mimicking and Prediction-guided Feature Imitation" (AAAI 2022).

`Paper <https://arxiv.org/abs/2112.04840>`_ (AAAI 36(2), pp. 1306-1313). No code
release by the authors is known; an unmerged ICD draft in an ``open-mmlab/mmrazor``
branch (``mmrazor/models/losses/rank_mimic.py``, ``pgfi.py`` and its RetinaNet
R101 -> R50 config) is the only implementation found, and it carries the loss
weights used here: RM ``4``, PFI ``1.5``. The two parts are two losses, both in
this file; the total is ``L_task + 4 L_RM + 1.5 L_PFI``.

Equation numbers are not cited: the paper's method section could not be read
here (only its abstract and the review quoting it). The formulas below are the
paper's description (RM: the teacher's ranking of the candidate boxes of each
instance, transferred with a softmax and the KL divergence; PFI: feature
imitation weighted by the teacher-student prediction difference), computed as
that draft does wherever the description leaves a choice. Every such choice is
an option with the draft's value as default; configs/icd/README.md lists them.

**Rank Mimicking** (:class:`RankMimickingLoss`). The candidates of GT ``g`` are
the anchors the detector's assigner makes positives of ``g``
(:func:`~mmkd_det.models.utils.max_iou_assign` with the assigner's thresholds;
teacher and student share the anchors, so they share the candidates). With
``s_j`` the score of candidate ``j`` for the GT's class (sigmoid probability),
per GT

.. math::
    p^{t}_{gj} = \frac{e^{s^t_{gj}/T}}{\sum_{k \in C_g} e^{s^t_{gk}/T}},\quad
    p^{s}_{gj} = \frac{e^{s^s_{gj}/T}}{\sum_{k \in C_g} e^{s^s_{gk}/T}},\quad
    L_{RM} = \frac{1}{|\mathcal{I}|}\sum_{b \in \mathcal{I}} \frac{1}{G_b}
             \sum_{g \le G_b} \sum_{j \in C_g} p^t_{gj}
             \log\frac{p^t_{gj}}{p^s_{gj}}

``KL(teacher || student)`` summed over the candidates, averaged over the GTs of
an image (``G_b``) and over the images with GT (``I``), ``T = 1``.

**Prediction-guided Feature Imitation** (:class:`PFILoss`). Per FPN level ``l``
and location ``(i, j)``, with ``z`` the ``A K`` classification outputs of the
location (all anchors and classes) and ``f`` a 1x1 adapter on the student,

.. math::
    P_{lij} = \frac{1}{AK}\sum_{c} (z^t_{lcij} - z^s_{lcij})^2,\quad
    L_{PFI} = \frac{1}{L}\sum_l \frac{1}{B H_l W_l}\sum_{b,i,j} P_{lbij}
              \frac{1}{C}\sum_{c} \big(F^t_{lbcij} - f(F^s_l)_{bcij}\big)^2

Shape shorthand: ``B`` images, ``P`` anchors of all levels (mmdet's order:
level, row, column, base anchor), ``A`` anchors per location, ``K`` classes,
``G`` GT boxes per image (padded to the batch maximum).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils import (DenseOutputs, anchor_valid_flags, assigner_thresholds, max_iou_assign, pad_gt,
                     prior_ious)
from .base_distill_loss import BaseDistillLoss

#: RM score: the sigmoid probability ('prob') or the raw logit ('logit').
SCORES = ('prob', 'logit')
#: RM score class: the GT's class ('gt') or the anchor's best class ('max').
SCORE_CLASSES = ('gt', 'max')
#: RM pairing: the same anchor in both ('anchor') or the k-th best of each ('sorted').
MATCHES = ('anchor', 'sorted')
#: RM normalisation: per image then over images ('image'), over the batch's GTs ('instance').
RM_NORMALIZE = ('image', 'instance')
#: PFI prediction space, channel reduction and normalisation.
PRED_SPACES = ('logit', 'prob')
CHANNEL_REDUCE = ('mean', 'sum')
PFI_NORMALIZE = ('pixels', 'weight')


def flatten_priors(maps: Sequence[Tensor], last: int) -> Tensor:
    """Per-level (B, A * last, H, W) head outputs -> (B, P, last), mmdet's prior order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, last) for m in maps], 1)


def candidate_scores(cls_scores: Sequence[Tensor],
                     assigned: Tensor,
                     labels: Tensor,
                     num_classes: int,
                     score: str = 'prob',
                     score_class: str = 'gt') -> Tensor:
    """The score ``s`` of every anchor for the RM softmax, (B, P).

    ``score_class='gt'``: the output of the class of the GT the anchor is
    assigned to (``assigned`` (B, P), -1 for none: class of slot 0, unused);
    ``'max'``: the anchor's largest output over the classes. ``score='prob'``
    applies the sigmoid (RetinaNet's classifier), ``'logit'`` keeps the logit.

    Args:
        cls_scores (Sequence[Tensor]): per level (B, A K, H, W) logits.
        assigned (Tensor): (B, P) GT slot or -1.
        labels (Tensor): (B, G) GT classes.
        num_classes (int): K.
    """
    flat = flatten_priors(cls_scores, num_classes)  # (B, P, K)
    if score_class == 'gt':
        cls = labels.gather(1, assigned.clamp(min=0))  # (B, P)
        z = flat.gather(2, cls[..., None]).squeeze(-1)
    else:
        z = flat.amax(-1)
    return z.sigmoid() if score == 'prob' else z


def segment_log_softmax(x: Tensor, group: Tensor, num_groups: int) -> Tensor:
    r"""Log-softmax of ``x`` within each group: ``x_j - \log \sum_{k: g_k = g_j} e^{x_k}``.

    Args:
        x (Tensor): (N,) values.
        group (Tensor): (N,) long group ids in ``[0, num_groups)``.
        num_groups (int): number of groups.

    Returns:
        Tensor: (N,).
    """
    top = x.new_full((num_groups, ), float('-inf'))
    top = top.scatter_reduce(0, group, x.detach(), 'amax').clamp(min=-1e30)
    shifted = x - top[group]
    total = x.new_zeros(num_groups).index_add(0, group, shifted.exp())
    return shifted - total[group].log()


def rank_mimicking_kl(s_score: Tensor,
                      t_score: Tensor,
                      assigned: Tensor,
                      valid: Tensor,
                      temperature: float = 1.0,
                      normalize: str = 'image',
                      match: str = 'anchor') -> Tensor:
    r"""L_RM (module docstring) from the candidates' scores.

    For GT ``g`` of image ``b`` the candidates ``C_g`` are the anchors with
    ``assigned == g``; ``p^t``, ``p^s`` are the softmax of ``s / T`` over
    ``C_g`` and the GT's term is ``KL(p^t || p^s)``. ``normalize='image'``:
    each image's sum over its GTs divided by its number of (valid) GTs, then the
    mean over the images that have GT; ``'instance'``: the sum over the batch
    divided by the number of GTs of the batch. A GT without candidates adds 0
    and still counts in the divisor. ``match='sorted'``: each side's
    candidates are sorted by their own score before pairing (the k-th best of
    the teacher with the k-th best of the student), as the mmrazor draft's
    second version; ``'anchor'`` pairs the same anchor.

    Args:
        s_score (Tensor): (B, P) student scores (with gradient).
        t_score (Tensor): (B, P) teacher scores (detached here).
        assigned (Tensor): (B, P) GT slot per anchor, -1 for none.
        valid (Tensor): (B, G) real GT slots.
        temperature (float): T.

    Returns:
        Tensor: scalar.
    """
    batch, num_gt = valid.shape
    cand = assigned >= 0
    offset = torch.arange(batch, device=assigned.device)[:, None] * num_gt
    dummy = batch * num_gt  # every non-candidate in one discarded group
    group = torch.where(cand, assigned + offset, offset.new_full((), dummy)).flatten()
    s = s_score.flatten() / temperature
    t = t_score.detach().flatten() / temperature
    if match == 'sorted':
        s = _sorted_within_groups(s, group)
        t = _sorted_within_groups(t, group)
        group = group.sort(stable=True).values
    log_s = segment_log_softmax(s, group, dummy + 1)
    log_t = segment_log_softmax(t, group, dummy + 1)
    keep = group < dummy
    term = torch.where(keep, log_t.exp() * (log_t - log_s), torch.zeros_like(s))
    per_gt = s.new_zeros(dummy + 1).index_add(0, group, term)[:dummy].view(batch, num_gt)
    counts = valid.sum(1)
    if normalize == 'instance':
        return per_gt.sum() / counts.sum().clamp(min=1)
    per_image = per_gt.sum(1) / counts.clamp(min=1)
    return per_image.sum() / (counts > 0).sum().clamp(min=1)


def _sorted_within_groups(x: Tensor, group: Tensor) -> Tensor:
    """``x`` reordered by group, then by decreasing value within a group."""
    order = x.detach().sort(descending=True, stable=True).indices
    order = order[group[order].sort(stable=True).indices]
    return x[order]


def prediction_difference(s_cls: Sequence[Tensor],
                          t_cls: Sequence[Tensor],
                          space: str = 'logit',
                          detach: bool = False) -> List[Tensor]:
    r"""PFI's weight per level, (B, H, W): :math:`P = \frac{1}{AK}\sum_c (z^t_c - z^s_c)^2`
    over the ``A K`` classification outputs of the location; ``space='prob'``
    compares sigmoid probabilities instead of logits. The teacher is detached;
    ``detach`` also cuts the student's gradient through P."""
    maps = []
    for s, t in zip(s_cls, t_cls):
        t = t.detach()
        if space == 'prob':
            s, t = s.sigmoid(), t.sigmoid()
        if detach:
            s = s.detach()
        maps.append((t - s).pow(2).mean(dim=1))
    return maps


@MODELS.register_module()
class RankMimickingLoss(BaseDistillLoss):
    r"""ICD's Rank Mimicking, :math:`L_{RM}` of the module docstring, times ``loss_weight``.

    Inputs: the classification outputs of both dense heads (record
    ``cls = dict(source='bbox_head', index=0)``), the batch's GT, image metas
    and the student detector (its anchors and assigner). Candidates are
    computed without gradient; only the scores carry it.

    Candidates: the student head's anchors (``prior_generator``), the IoU with
    the GT boxes (:func:`~mmkd_det.models.utils.prior_ious`) and the positive
    rule of the head's assigner (:func:`~mmkd_det.models.utils.max_iou_assign`):
    ``MaxIoUAssigner`` (RetinaNet): ``pos_iou_thr`` and, when
    ``match_low_quality``, its ``min_pos_iou`` low-quality matches;
    ``ATSSAssigner``: IoU at least the per-GT adaptive threshold (the top-k and
    centre-inside conditions of ATSS are not applied). With
    ``use_valid_flags`` the anchors are those ``get_targets`` lets the assigner
    see (valid flags of the image's ``pad_shape``, ``allowed_border``).

    Host syncs: none in the hot path (the per-GT softmax is a segment softmax
    over a flat tensor; no loop over GTs, no ``.item()``; the valid flags loop
    over the images in Python without reading tensor values). Memory: the
    (B, P, G) IoU matrix and a few masks of that size, as TID.

    Args:
        temperature (float): T of the softmax; 1 (no temperature) by default.
            There is no ``T^2`` factor.
        score (str): ``'prob'`` (sigmoid probability, default, the draft's
            second version) or ``'logit'`` (its first version).
        score_class (str): ``'gt'`` (the GT's class, default) or ``'max'``
            (the anchor's best class).
        match (str): ``'anchor'`` (default: the same anchor in teacher and
            student, what "mimicking the teacher's rank" needs) or ``'sorted'``
            (each side sorted by its own score before the softmax, as the
            draft's second version; it compares score profiles, not rankings).
        normalize (str): ``'image'`` (default, the draft) or ``'instance'``,
            see :func:`rank_mimicking_kl`.
        pos_iou_thr (float, optional): a fixed positive IoU threshold instead
            of the assigner's (needed for heads without an IoU assigner).
        min_pos_iou (str | float | None): ``'assigner'`` (default: the
            ``MaxIoUAssigner``'s low-quality rule if it has one, none for
            ATSS), a float (low-quality matching at that IoU) or None (off).
        use_valid_flags (bool): drop the anchors ``get_targets`` drops.
        head (str): the dense head attribute of the student.
        **kwargs: ``loss_weight`` (default 4, the draft's RetinaNet config),
            ``inputs``.
    """

    default_inputs = dict(s_cls='student.cls', t_cls='teacher.cls')
    same_shape_pairs = (('s_cls', 't_cls'), )
    default_adapter = None

    def __init__(self,
                 temperature: float = 1.0,
                 score: str = 'prob',
                 score_class: str = 'gt',
                 match: str = 'anchor',
                 normalize: str = 'image',
                 pos_iou_thr: Optional[float] = None,
                 min_pos_iou: Union[str, float, None] = 'assigner',
                 use_valid_flags: bool = True,
                 head: str = 'bbox_head',
                 loss_weight: float = 4.0,
                 **kwargs):
        super().__init__(loss_weight=loss_weight, **kwargs)
        choices = dict(
            score=(score, SCORES),
            score_class=(score_class, SCORE_CLASSES),
            match=(match, MATCHES),
            normalize=(normalize, RM_NORMALIZE))
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f'RankMimickingLoss {key}={value!r}; choose one of {allowed}.')
        if temperature <= 0:
            raise ValueError(f'RankMimickingLoss temperature must be > 0, got {temperature}.')
        if isinstance(min_pos_iou, str) and min_pos_iou != 'assigner':
            raise ValueError(f"RankMimickingLoss min_pos_iou={min_pos_iou!r}; use 'assigner', "
                             f'a float or None.')
        self.temperature, self.score, self.score_class = float(temperature), score, score_class
        self.match, self.normalize, self.pos_iou_thr = match, normalize, pos_iou_thr
        self.min_pos_iou, self.use_valid_flags, self.head = min_pos_iou, use_valid_flags, head

    def check_detectors(self, student, teacher) -> None:
        """The student needs the dense head :meth:`_head` reads (checked at build)."""
        self._head(student)

    def _head(self, student):
        head = getattr(student, self.head, None)
        if head is None or not hasattr(head, 'prior_generator'):
            raise ValueError(f'RankMimickingLoss needs a dense head `{self.head}` with a '
                             f'prior_generator on the student (RetinaNet, ATSS; `rpn_head` '
                             f'for two-stage detectors); set head=... .')
        return head

    def _low_quality(self, assigner: dict) -> Tuple[Optional[float], bool]:
        if self.min_pos_iou != 'assigner':
            return self.min_pos_iou, True
        kind = assigner.get('type', None)
        kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
        if kind != 'MaxIoUAssigner' or not assigner.get('match_low_quality', True):
            return None, True
        return float(assigner.get('min_pos_iou',
                                  0.0)), bool(assigner.get('gt_max_assign_all', True))

    @torch.no_grad()
    def candidates(self, cls_scores: Sequence[Tensor], gt_instances, batch_img_metas,
                   student) -> Tuple[Tensor, Tensor, Tensor]:
        """The anchor -> GT assignment (B, P) (-1: not a candidate), and the padded
        GT labels and validity (B, G)."""
        head = self._head(student)
        gen = head.prior_generator
        sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        if len(sizes) != gen.num_levels:
            raise ValueError(f'RankMimickingLoss: {len(sizes)} recorded levels but the anchor '
                             f'generator has {gen.num_levels}; record all levels of '
                             f'`{self.head}` (no `levels=` on the cls recorder).')
        if len(gt_instances) != cls_scores[0].shape[0]:
            raise ValueError(f'RankMimickingLoss: {len(gt_instances)} gt_instances for a batch '
                             f'of {cls_scores[0].shape[0]} images.')
        device = cls_scores[0].device
        anchors_lvl = gen.grid_priors(sizes, device=device)
        anchors = torch.cat(anchors_lvl).float()
        if anchors.shape[-1] != 4:
            raise ValueError(f'RankMimickingLoss needs anchor boxes; {type(gen).__name__} '
                             f'gives points (anchor-free head). Use an anchor-based head.')
        a = head.num_base_priors
        num_classes = cls_scores[0].shape[1] // a
        if num_classes * a != cls_scores[0].shape[1] or anchors.shape[0] != sum(h * w * a
                                                                                for h, w in sizes):
            raise ValueError(f'RankMimickingLoss: {cls_scores[0].shape[1]} classification '
                             f'channels do not fit {a} anchors per location; record the '
                             f'classification output (bbox_head index 0).')
        gt, labels, valid = pad_gt(gt_instances, device)
        cfg = getattr(head, 'train_cfg', None) or {}
        assigner = cfg.get('assigner', {}) or {}
        if self.pos_iou_thr is not None:
            pos = gt.new_full(gt.shape[:2], float(self.pos_iou_thr))
        else:
            out = DenseOutputs(
                anchors.new_zeros(0), anchors.new_zeros(0), anchors, anchors.new_zeros(0, 2),
                [h * w for h, w in sizes], a)
            try:
                pos, _ = assigner_thresholds(head, out, gt, name='RankMimickingLoss')
            except ValueError as err:
                raise ValueError(f'{err} For rank mimicking only the positive threshold '
                                 f'is used: set pos_iou_thr=... instead.') from None
        prior_valid = None
        if self.use_valid_flags:
            prior_valid = anchor_valid_flags(gen, sizes, batch_img_metas, anchors,
                                             cfg.get('allowed_border', -1))
        min_pos, assign_all = self._low_quality(assigner)
        iou = prior_ious(anchors, gt, valid)
        assigned = max_iou_assign(iou, pos, valid, prior_valid, min_pos, assign_all)
        return assigned, labels, valid

    def forward(self, s_cls: Sequence[Tensor], t_cls: Sequence[Tensor], *, gt_instances,
                batch_img_metas, student) -> Tensor:
        s_cls, t_cls = self.level_pairs(s_cls, t_cls)
        head = self._head(student)
        if self.score == 'prob' and not getattr(head, 'use_sigmoid_cls', True):
            raise ValueError(f'RankMimickingLoss score=\'prob\' needs a sigmoid classifier; '
                             f'{type(head).__name__} uses softmax. Set score=\'logit\'.')
        assigned, labels, valid = self.candidates(s_cls, gt_instances, batch_img_metas, student)
        if labels.shape[1] == 0:  # no GT in the batch (a shape, not a value)
            return s_cls[0].sum() * 0
        num_classes = s_cls[0].shape[1] // head.num_base_priors
        s = candidate_scores(s_cls, assigned, labels, num_classes, self.score, self.score_class)
        t = candidate_scores([c.detach() for c in t_cls], assigned, labels, num_classes, self.score,
                             self.score_class)
        loss = rank_mimicking_kl(s, t, assigned, valid, self.temperature, self.normalize,
                                 self.match)
        return self.loss_weight * loss


@MODELS.register_module()
class PFILoss(BaseDistillLoss):
    r"""ICD's Prediction-guided Feature Imitation, :math:`L_{PFI}` of the module
    docstring, times ``loss_weight``.

    Inputs: FPN features of both models (``fpn``, the neck) and the
    classification outputs of both heads (``cls``, ``bbox_head`` index 0), level
    for level (the head reads the neck levels in order).

    Args:
        pred_space (str): P from ``'logit'`` differences (default, the draft)
            or ``'prob'`` (sigmoid probabilities), :func:`prediction_difference`.
        detach_weight (bool): cut the student's gradient through P. Default
            False: the draft lets it through, so PFI also pulls the student's
            predictions towards the teacher's where the features differ.
        channel_reduce (str): the feature term per location, ``'mean'``
            (default, the draft) or ``'sum'`` (squared L2 norm) over channels.
        normalize (str): ``'pixels'`` (default, the draft: per level the mean
            over images and locations, then the mean over levels) or
            ``'weight'`` (sum over levels and locations divided by the sum of P,
            the divisor detached). No host syncs.
        **kwargs: ``loss_weight`` (default 1.5, the draft's RetinaNet config),
            ``inputs``, ``adapter`` (default a 1x1 conv per level on the
            student; the draft has none, its widths are equal), ``resize_student``.
    """

    default_inputs = dict(
        s_feats='student.fpn', t_feats='teacher.fpn', s_cls='student.cls', t_cls='teacher.cls')
    feature_pairs = (('s_feats', 't_feats'), )
    same_shape_pairs = (('s_cls', 't_cls'), )
    default_adapter = dict(kernel_size=1)

    def __init__(self,
                 pred_space: str = 'logit',
                 detach_weight: bool = False,
                 channel_reduce: str = 'mean',
                 normalize: str = 'pixels',
                 loss_weight: float = 1.5,
                 **kwargs):
        super().__init__(loss_weight=loss_weight, **kwargs)
        choices = dict(
            pred_space=(pred_space, PRED_SPACES),
            channel_reduce=(channel_reduce, CHANNEL_REDUCE),
            normalize=(normalize, PFI_NORMALIZE))
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f'PFILoss {key}={value!r}; choose one of {allowed}.')
        self.pred_space, self.detach_weight = pred_space, bool(detach_weight)
        self.channel_reduce, self.normalize = channel_reduce, normalize

    def weights(self, s_cls: Sequence[Tensor], t_cls: Sequence[Tensor]) -> List[Tensor]:
        """P per level, (B, H, W)."""
        return prediction_difference(s_cls, t_cls, self.pred_space, self.detach_weight)

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], s_cls: Sequence[Tensor],
                t_cls: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        s_cls, t_cls = self.level_pairs(s_cls, t_cls)
        if len(s_cls) != len(t_feats):
            raise ValueError(f'PFILoss: {len(t_feats)} feature levels but {len(s_cls)} head '
                             f'levels; record the neck levels the head reads.')
        weights = self.weights(s_cls, t_cls)
        sq = self.squared_error_maps(s_feats, t_feats)  # sum over channels, (B, H, W)
        total, norm, per_level = 0.0, 0.0, []
        for lvl, (w, e, f) in enumerate(zip(weights, sq, t_feats)):
            if w.shape != e.shape:
                raise ValueError(f'PFILoss: level {lvl}: head map {tuple(w.shape)} vs feature '
                                 f'map {tuple(e.shape)} (B, H, W); record the neck levels the '
                                 f'head reads, in order.')
            if self.channel_reduce == 'mean':
                e = e / f.shape[1]
            per_level.append((w * e).mean())
            total = total + (w * e).sum()
            norm = norm + w.sum()
        if self.normalize == 'pixels':
            loss = torch.stack(per_level).mean()
        else:
            loss = total / norm.detach().clamp(min=1e-12)
        return self.loss_weight * loss
