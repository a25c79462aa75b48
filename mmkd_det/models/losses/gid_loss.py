r"""GID: Dai, Jiang, Wu, Bao, Wang, Liu, Zhou, "General Instance Distillation for Object
Detection" (CVPR 2021).

Paper: ``https://openaccess.thecvf.com/content/CVPR2021/papers/`` +
``Dai_General_Instance_Distillation_for_Object_Detection_CVPR_2021_paper.pdf``
(arXiv:2103.02340). Code: the first author's detectron2 "reproduce version"
``github.com/daixinghome/Distill_GID_detectron2`` (RetinaNet only; its README says the
original runs in a private framework and the accuracy alignment was not finished).

The paper's own text was not readable while this was written (only its abstract). The
equations below combine (a) a detailed third-party summary of the paper's method section
(GI score, GI box, RPN for two-stage detectors, NMS 0.3, K = 10, the adapted feature
loss, the normalised-distance relation loss, the masked response loss and the total
:math:`L = L_{GT} + \lambda_1 L_{Feature} + \lambda_2 L_{Relation} + \lambda_3
L_{Response}`) and (b) the released code (normalisations, pooling, loss weights). Values
that come from the code only are marked "(code)"; configs/gid/README.md lists every
reading and which facts are unverified against the paper.

**General instance selection (GISM)**: every prior of a dense head (RetinaNet's head;
for Faster R-CNN its RPN) is a predicted instance ``r`` of teacher and student. GI
score and box (:func:`~mmkd_det.models.utils.general_instances.gi_score_and_box`):

.. math::
    P^{r}_{GI} = \max_{0<c\le K} |P^{rc}_t - P^{rc}_s|, \qquad
    B^{r}_{GI} = \begin{cases} B^{r}_t & \max_c P^{rc}_t > \max_c P^{rc}_s \\
                                B^{r}_s & \text{otherwise} \end{cases}

then per image the 3000 (code) highest scores, boxes clipped to the image and sides
``> 10`` px (code), NMS at IoU 0.3 and the top ``K = 10`` (summary and code): the general
instances (GIs), :func:`~mmkd_det.models.utils.general_instances.select_general_instances`.
No ground truth is used.

**Feature-based** (:func:`gid_feature_loss`): FPN features of teacher and student
RoIAligned on the GIs (10 x 10, code), each GI from its FPN level, the student through a
linear adapter :math:`f_{adapt}` (a 1x1 conv per level on the maps before pooling):

.. math::
    L_{Feature} = \frac{1}{R\,S^2} \sum_{i=1}^{R} \| t_i - f_{adapt}(s_i) \|_2^2

(``feature_normalize='positions'``, code: sum over channels, mean over GIs and pooled
positions; ``'instances'``: mean over the GIs only, the summary's :math:`1/K`.)

**Relation-based** (:func:`gid_relation_loss`), RKD's distance-wise loss on the GIs'
pooled features: the adapted student features :math:`s'_i` as the summary writes
(``relation_adapted=False``: the student's own, what the code computes, its adapter
never running), all GIs of the batch (code):

.. math::
    L_{Relation} = \frac{1}{n(n-1)} \sum_{i \ne j} l_\delta\Big(
        \frac{\|t_i - t_j\|_2}{\mu_t}, \frac{\|s'_i - s'_j\|_2}{\mu_s}\Big), \qquad
    \mu = \frac{1}{n(n-1)} \sum_{i \ne j} \|x_i - x_j\|_2

with :math:`l_\delta` the smooth L1 (Huber) loss, :math:`\delta = 1`.

**Response-based** (:func:`gid_response_loss`): the priors that the head's own
assigner (``MaxIoUAssigner`` thresholds, low-quality matches as configured) makes
positive when the GIs are the ground truth form the mask :math:`M`;

.. math::
    L_{Response} = \frac{w_{cls}}{\sum M} \sum_r M_r\, BCE(y^{r}_s, \sigma(y^{r}_t))
                 + \frac{w_{reg}}{\sum M} \sum_r M_r\, \| \delta^{r}_s - \delta^{r}_t \|_1

on the raw outputs (class logits summed over classes, box deltas; code: BCE and L1; the
summary says the detector's own loss types, with weights α, β).

Total: ``loss_weight * (λ_f L_Feature, λ_r L_Relation, L_Response)``, returned as the
dict ``loss_feature`` / ``loss_relation`` / ``loss_response`` (each logged); a term
whose weight is 0 is not computed and not returned.

**Faster R-CNN.** The paper (as summarised) uses the RPN's objectness and proposals for
two-stage detectors; the released code distils RetinaNet only (its R-CNN wrapper returns
losses, no predictions). Here GISM and the response term read the RPN (``head='auto'``
picks ``rpn_head`` for a two-stage detector): objectness as the one-class score, the
RPN's decoded anchors as boxes, and its assigner (IoU 0.7 / low-quality 0.3) for the
mask. Features are pooled with ``roi_extractor`` (or the detectors' own extractors).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.dense_head_outputs import decode_dense_outputs
from ..utils.general_instances import (GI_SCORES, GeneralInstances, gi_score_and_box,
                                       select_general_instances)
from ..utils.prior_assign import anchor_valid_flags, max_iou_assign
from ..utils.prior_ious import prior_ious
from ..utils.roi_records import build_roi_extractor, pool_roi_features
from .base_distill_loss import BaseDistillLoss

FEATURE_NORMALIZE = ('positions', 'instances')
RELATION_SCOPES = ('batch', 'image')
HEADS = ('auto', 'bbox_head', 'rpn_head')


def gid_feature_loss(s_rois: Tensor, t_rois: Tensor, normalize: str = 'positions') -> Tensor:
    r"""Feature-based GID loss on GI-pooled features.

    .. math::
        L_{Feature} = \frac{1}{R\,m} \sum_{i=1}^{R} \| t_i - f_{adapt}(s_i) \|_2^2,
        \quad m = S^2 \ (\text{'positions'}), \ m = 1 \ (\text{'instances'})

    Args:
        s_rois (Tensor): (R, C, S, S) adapted student features.
        t_rois (Tensor): (R, C, S, S) teacher features (detached here).
        normalize (str): 'positions' (the released code) or 'instances'.

    Returns:
        Tensor: scalar; 0 (in the graph) when R = 0.
    """
    if normalize not in FEATURE_NORMALIZE:
        raise ValueError(f'feature_normalize must be one of {FEATURE_NORMALIZE}, got '
                         f'{normalize!r}.')
    if s_rois.shape != t_rois.shape:
        raise ValueError(f'GIDLoss: student GI features {tuple(s_rois.shape)} vs teacher '
                         f'{tuple(t_rois.shape)}; the adapter must map the student onto the '
                         f'teacher\'s width (adapter=\'auto\') and both sides must pool with the '
                         f'same output size.')
    num = s_rois.shape[0]
    if num == 0:
        return s_rois.sum() * 0
    total = (s_rois - t_rois.detach()).pow(2).sum()
    per = num * s_rois.shape[2] * s_rois.shape[3] if normalize == 'positions' else num
    return total / per


def normalized_distances(x: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Pairwise Euclidean distances divided by their off-diagonal mean (RKD's
    :math:`\psi_D`): :math:`\|x_i - x_j\|_2 / \mu`, :math:`\mu = \frac{1}{n(n-1)}
    \sum_{i \ne j} \|x_i - x_j\|_2`.

    Distances are :math:`\sqrt{\max(\|x_i\|^2 + \|x_j\|^2 - 2 x_i \cdot x_j,
    10^{-12})}` (a finite gradient at 0), the diagonal set to 0; :math:`\mu` is
    clamped at :math:`10^{-12}`.

    Args:
        x (Tensor): (n, D) instance features.

    Returns:
        tuple: (n, n) normalised distances (0 on the diagonal) and the (n, n)
        off-diagonal mask.
    """
    n = x.shape[0]
    sq = x.pow(2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * x @ x.t()
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    dist = d2.clamp(min=1e-12).sqrt() * off
    mean = dist.sum() / max(n * (n - 1), 1)
    return dist / mean.clamp(min=1e-12), off


def gid_relation_loss(s_rois: Tensor,
                      t_rois: Tensor,
                      beta: float = 1.0,
                      counts: Optional[Sequence[int]] = None) -> Tensor:
    r"""Relation-based GID loss (RKD distance-wise) on GI-pooled features.

    .. math::
        L_{Relation} = \frac{1}{n(n-1)} \sum_{i \ne j} l_\delta\big(
            \psi(s)_{ij}, \psi(t)_{ij}\big), \quad
        l_\delta(a, b) = \begin{cases} \frac{(a-b)^2}{2\delta} & |a-b| < \delta \\
                                       |a-b| - \frac{\delta}{2} & \text{otherwise} \end{cases}

    with :math:`\psi` of :func:`normalized_distances` and :math:`\delta` = ``beta``.

    Args:
        s_rois (Tensor): (R, ...) student GI features (any width).
        t_rois (Tensor): (R, ...) teacher GI features (detached here).
        beta (float): :math:`\delta` of the smooth L1.
        counts (Sequence[int], optional): GIs per image (summing to R): the loss
            per image, averaged over the images with at least two GIs
            (``relation_scope='image'``). None: all R GIs together (``'batch'``,
            the released code).

    Returns:
        Tensor: scalar; 0 (in the graph) without a pair.
    """
    if s_rois.shape[0] != t_rois.shape[0]:
        raise ValueError(f'GIDLoss: {s_rois.shape[0]} student vs {t_rois.shape[0]} teacher GIs.')
    s_flat, t_flat = s_rois.flatten(1), t_rois.detach().flatten(1)
    groups = [(0, s_flat.shape[0])] if counts is None else []
    if counts is not None:
        start = 0
        for c in counts:
            groups.append((start, start + int(c)))
            start += int(c)
    losses = []
    for a, b in groups:
        if b - a < 2:
            continue
        s_d, off = normalized_distances(s_flat[a:b])
        t_d, _ = normalized_distances(t_flat[a:b])
        n = b - a
        elem = F.smooth_l1_loss(s_d, t_d, beta=beta, reduction='none') * off
        losses.append(elem.sum() / (n * (n - 1)))
    if not losses:
        return s_rois.sum() * 0
    return torch.stack(losses).mean()


def gid_response_loss(s_cls: Tensor, t_cls: Tensor, s_reg: Tensor, t_reg: Tensor, mask: Tensor,
                      cls_weight: float, reg_weight: float) -> Tensor:
    r"""Response-based GID loss on the priors of the GI mask.

    .. math::
        L_{Response} = \frac{1}{\max(1, \sum M)} \sum_{b, r} M_{br} \Big(
            w_{cls} \sum_c BCE(y^{brc}_s, \sigma(y^{brc}_t))
            + w_{reg} \sum_{k=1}^{4} |\delta^{brk}_s - \delta^{brk}_t| \Big)

    Args:
        s_cls, t_cls (Tensor): (B, P, K) class logits.
        s_reg, t_reg (Tensor): (B, P, 4) box deltas.
        mask (Tensor): (B, P) bool, :math:`M`.
        cls_weight (float): :math:`w_{cls}`.
        reg_weight (float): :math:`w_{reg}`.

    Returns:
        Tensor: scalar; 0 (in the graph) when the mask is empty.
    """
    m = mask.to(s_cls.dtype)
    count = m.sum().clamp(min=1.0)
    total = s_cls.sum() * 0 + s_reg.sum() * 0
    if cls_weight:
        bce = F.binary_cross_entropy_with_logits(
            s_cls, t_cls.detach().sigmoid(), reduction='none').sum(-1)
        total = total + cls_weight * (bce * m).sum() / count
    if reg_weight:
        l1 = (s_reg - t_reg.detach()).abs().sum(-1)
        total = total + reg_weight * (l1 * m).sum() / count
    return total


def _flatten(maps: Sequence[Tensor], last: int) -> Tensor:
    """Per-level (B, A * last, H, W) -> (B, P, last) in mmdet's prior order."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, last) for m in maps], 1)


@MODELS.register_module()
class GIDLoss(BaseDistillLoss):
    """General Instance Distillation: GISM + feature, relation and response terms.

    Records: the FPN levels to pool (``fpn``; for Faster R-CNN the levels its RoI
    extractor reads, ``levels=[0, 1, 2, 3]``), and the dense head's outputs
    (``cls``: ``index=0``, ``reg``: ``index=1`` of ``bbox_head`` / ``rpn_head``).

    Args:
        head (str): the dense head GISM and the response term read: 'auto'
            (``rpn_head`` for a detector with an ``roi_head``, else
            ``bbox_head``), 'bbox_head' or 'rpn_head'.
        gi_score (str): 'max_abs_diff' (the paper's GI score, default) or
            'abs_max_diff' (the released code). Equal for an RPN (one class).
        pre_nms_topk (int): candidates per image before NMS (code: 3000).
        nms_iou (float): NMS IoU threshold of GISM (code: 0.3).
        topk (int): GIs per image, ``K`` (code: 10).
        min_size (float): smallest GI box side kept, pixels (code: 10).
        roi_extractor (dict, optional): one RoI extractor config (mmdet
            ``SingleRoIExtractor``) pooling both sides; None: each detector's own
            ``roi_head.bbox_roi_extractor`` (two-stage only).
        feature_weight (float): λ_f (code's default config: 5e-3).
        feature_normalize (str): 'positions' (code) or 'instances'.
        relation_weight (float): λ_r (code: 40).
        relation_beta (float): δ of the smooth L1 (code: 1).
        relation_scope (str): 'batch' (all GIs of the batch, code) or 'image'.
        relation_adapted (bool): the relation term on the adapted student features
            (True, the summary's :math:`s'_i`) or the student's own (False, what the
            released code computes, its adapter never being applied).
        response_cls_weight (float): w_cls (code's default config: 0.1).
        response_reg_weight (float): w_reg (code's default config: 0.1).
        response_iou_thrs (tuple, optional): ``(pos_iou_thr, min_pos_iou)`` for
            the response mask (``min_pos_iou`` None: no low-quality matches);
            None: the head's ``MaxIoUAssigner`` settings.
        **kwargs: ``loss_weight`` (scales every term), ``inputs``, ``adapter``
            (default ``dict(kernel_size=1)``: :math:`f_{adapt}`, a 1x1 conv per
            level; the released code declares one 3x3 conv shared by the levels,
            ``dict(kernel_size=3)`` here per level, that its forward never applies:
            ``'auto'`` / ``None`` give no adapter at equal widths), ``resize_student``.
    """

    default_inputs = dict(
        s_feats='student.fpn',
        t_feats='teacher.fpn',
        s_cls='student.cls',
        t_cls='teacher.cls',
        s_reg='student.reg',
        t_reg='teacher.reg')
    feature_pairs = (('s_feats', 't_feats'), )
    same_shape_pairs = (('s_cls', 't_cls'), ('s_reg', 't_reg'))
    default_adapter = dict(kernel_size=1)

    def __init__(self,
                 head: str = 'auto',
                 gi_score: str = 'max_abs_diff',
                 pre_nms_topk: int = 3000,
                 nms_iou: float = 0.3,
                 topk: int = 10,
                 min_size: float = 10.0,
                 roi_extractor: Optional[dict] = None,
                 feature_weight: float = 5e-3,
                 feature_normalize: str = 'positions',
                 relation_weight: float = 40.0,
                 relation_beta: float = 1.0,
                 relation_scope: str = 'batch',
                 relation_adapted: bool = True,
                 response_cls_weight: float = 0.1,
                 response_reg_weight: float = 0.1,
                 response_iou_thrs: Optional[Tuple[float, Optional[float]]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        for name, value, allowed in (('head', head, HEADS), ('gi_score', gi_score, GI_SCORES),
                                     ('feature_normalize', feature_normalize, FEATURE_NORMALIZE),
                                     ('relation_scope', relation_scope, RELATION_SCOPES)):
            if value not in allowed:
                raise ValueError(f'GIDLoss: {name} must be one of {allowed}, got {value!r}.')
        if topk < 1 or pre_nms_topk < 1:
            raise ValueError(f'GIDLoss: topk and pre_nms_topk must be >= 1, got {topk}, '
                             f'{pre_nms_topk}.')
        if not (feature_weight or relation_weight or response_cls_weight or response_reg_weight):
            raise ValueError('GIDLoss: every term weight is 0 (feature_weight, relation_weight, '
                             'response_cls_weight, response_reg_weight); set at least one.')
        if response_iou_thrs is not None and len(response_iou_thrs) != 2:
            raise ValueError(f'GIDLoss: response_iou_thrs must be (pos_iou_thr, min_pos_iou), '
                             f'got {response_iou_thrs!r}.')
        self.head = head
        self.gi_score = gi_score
        self.pre_nms_topk, self.nms_iou, self.topk = int(pre_nms_topk), float(nms_iou), int(topk)
        self.min_size = float(min_size)
        self._extractor = None if roi_extractor is None else build_roi_extractor(roi_extractor)
        self.feature_weight = float(feature_weight)
        self.feature_normalize = feature_normalize
        self.relation_weight = float(relation_weight)
        self.relation_beta = float(relation_beta)
        self.relation_scope = relation_scope
        self.relation_adapted = relation_adapted
        self.response_cls_weight = float(response_cls_weight)
        self.response_reg_weight = float(response_reg_weight)
        self.response_iou_thrs = response_iou_thrs
        if not (self.feature_weight or (self.relation_weight and relation_adapted)):
            self.feature_pairs = ()  # no adapter to build (nor to leave without gradient)

    # ---------------------------------------------------------------- pieces
    def dense_head(self, detector):
        """The dense head of ``detector`` that ``head`` names."""
        name = self.head
        if name == 'auto':
            name = 'rpn_head' if getattr(detector, 'roi_head', None) is not None else 'bbox_head'
        head = getattr(detector, name, None)
        if head is None or not hasattr(head, 'prior_generator'):
            raise TypeError(f'GIDLoss: {type(detector).__name__} has no dense {name} with a '
                            f'prior_generator (GISM reads per-prior predictions); set head= to '
                            f'\'bbox_head\' (RetinaNet-like) or \'rpn_head\' (two-stage).')
        return head

    def extractor(self, detector, role: str):
        """The RoI extractor pooling ``detector``'s features on the GIs."""
        if self._extractor is not None:
            return self._extractor
        ext = getattr(getattr(detector, 'roi_head', None), 'bbox_roi_extractor', None)
        if ext is None:
            raise TypeError(f'GIDLoss: the {role} ({type(detector).__name__}) has no '
                            f'roi_head.bbox_roi_extractor; give roi_extractor=dict(type='
                            f'\'SingleRoIExtractor\', ...) to pool a one-stage detector\'s '
                            f'features on the general instances.')
        return ext

    def select(self, s_cls, t_cls, s_reg, t_reg, student, teacher,
               batch_img_metas) -> Tuple[GeneralInstances, Tensor]:
        """GISM on the recorded head outputs; also returns the (P, 4) priors."""
        s_head, t_head = self.dense_head(student), self.dense_head(teacher)
        with torch.no_grad():
            t_out = decode_dense_outputs(t_head, [c.detach() for c in t_cls],
                                         [r.detach() for r in t_reg])
            s_out = decode_dense_outputs(s_head, [c.detach() for c in s_cls],
                                         [r.detach() for r in s_reg])
            score, box = gi_score_and_box(t_out.scores, s_out.scores, t_out.boxes, s_out.boxes,
                                          self.gi_score)
            shapes = None
            if batch_img_metas and all('img_shape' in m for m in batch_img_metas):
                shapes = [m['img_shape'][:2] for m in batch_img_metas]
            gis = select_general_instances(score, box, shapes, self.pre_nms_topk, self.nms_iou,
                                           self.topk, self.min_size)
        return gis, s_out.priors

    def response_mask(self, head, priors: Tensor, gis: GeneralInstances, featmap_sizes,
                      batch_img_metas) -> Tensor:
        """(B, P) bool: the priors the head's assigner makes positive for the GIs."""
        cfg = getattr(head, 'train_cfg', None) or {}
        assigner = cfg.get('assigner', {}) if hasattr(cfg, 'get') else {}
        if self.response_iou_thrs is not None:
            pos_thr, min_pos = self.response_iou_thrs
            all_ties = True
        else:
            kind = assigner.get('type', None)
            kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
            if kind != 'MaxIoUAssigner':
                raise ValueError(f'GIDLoss: the response mask assigns priors to the GIs with '
                                 f'the head\'s MaxIoUAssigner, but {type(head).__name__} has '
                                 f'{kind!r}; set response_iou_thrs=(pos_iou_thr, min_pos_iou).')
            pos_thr = assigner['pos_iou_thr']
            min_pos = assigner.get('min_pos_iou', 0.0) \
                if assigner.get('match_low_quality', True) else None
            all_ties = assigner.get('gt_max_assign_all', True)
        iou = prior_ious(priors, gis.boxes, gis.valid)
        prior_valid = anchor_valid_flags(head.prior_generator, featmap_sizes, batch_img_metas,
                                         priors, cfg.get('allowed_border', -1)) \
            if batch_img_metas else None
        thr = gis.boxes.new_full(gis.valid.shape, float(pos_thr))
        assigned = max_iou_assign(iou, thr, gis.valid, prior_valid,
                                  None if min_pos is None else float(min_pos), all_ties)
        return assigned >= 0

    # --------------------------------------------------------------- forward
    def forward(self,
                s_feats: Sequence[Tensor],
                t_feats: Sequence[Tensor],
                s_cls: Sequence[Tensor],
                t_cls: Sequence[Tensor],
                s_reg: Sequence[Tensor],
                t_reg: Sequence[Tensor],
                *,
                batch_img_metas=None,
                student,
                teacher) -> Dict[str, Tensor]:
        s_cls, t_cls = self.level_pairs(s_cls, t_cls)
        s_reg, t_reg = self.level_pairs(s_reg, t_reg)
        gis, priors = self.select(s_cls, t_cls, s_reg, t_reg, student, teacher, batch_img_metas)
        terms = {}
        if self.feature_weight or self.relation_weight:
            s_feats, t_feats = self.level_pairs(s_feats, t_feats)
            s_ext, t_ext = self.extractor(student, 'student'), self.extractor(teacher, 'teacher')
            num_levels = len(s_ext.featmap_strides)
            if len(s_feats) != num_levels:
                raise ValueError(f'GIDLoss: {len(s_feats)} FPN levels recorded but the RoI '
                                 f'extractor reads {num_levels} (featmap_strides '
                                 f'{list(s_ext.featmap_strides)}); record exactly those levels '
                                 f'(recorders=dict(fpn=dict(source=\'neck\', '
                                 f'levels={list(range(num_levels))}))).')
            rois = gis.rois
            with torch.no_grad():
                t_rois = pool_roi_features(t_ext, [t.detach() for t in t_feats], rois)
            adapted = None
            if self.feature_weight or self.relation_adapted:
                adapted = pool_roi_features(s_ext, self.adapt('s_feats', s_feats, t_feats), rois)
            if self.feature_weight:
                terms['loss_feature'] = self.feature_weight * gid_feature_loss(
                    adapted, t_rois, self.feature_normalize)
            if self.relation_weight:
                s_rel = adapted if self.relation_adapted else pool_roi_features(
                    s_ext, s_feats, rois)
                counts = gis.valid.sum(1).tolist() if self.relation_scope == 'image' else None
                terms['loss_relation'] = self.relation_weight * gid_relation_loss(
                    s_rel, t_rois, self.relation_beta, counts)
        if self.response_cls_weight or self.response_reg_weight:
            head = self.dense_head(student)
            mask = self.response_mask(head, priors, gis, [c.shape[-2:] for c in s_cls],
                                      batch_img_metas)
            k = head.cls_out_channels
            box_dim = getattr(getattr(head, 'bbox_coder', None), 'encode_size', 4)
            terms['loss_response'] = gid_response_loss(
                _flatten(s_cls, k), _flatten(t_cls, k), _flatten(s_reg, box_dim),
                _flatten(t_reg, box_dim), mask, self.response_cls_weight, self.response_reg_weight)
        return {k: self.loss_weight * v for k, v in terms.items()}
