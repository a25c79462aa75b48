r"""DSIG: Chen, Chen, Liu, Wang, Jia, "Deep Structured Instance Graph for Distilling Object
Detectors" (ICCV 2021).

`Paper <https://arxiv.org/abs/2109.12862>`_, authors' code
`dvlab-research/Dsig <https://github.com/dvlab-research/Dsig>`_ (Detectron2;
``projects/Distillation/model/rcnn_kd.py``, ``utils/matrix_utils.py``,
``utils/feature_kd_loss.py``, ``model/teacher/roi_heads.py``, configs
``Distillation-FasterRCNN-*-dsig-1x.yaml``).

A graph per image: its **nodes** are the RoI features (RoIAlign of the FPN, 7 x 7,
flattened to :math:`D = C \cdot 7 \cdot 7`) of the student's sampled R-CNN RoIs, the
teacher's features pooled on the same RoIs ("we share the student's RoI with the
teacher"); its **edges** are the cosine similarities between nodes. Three terms, per
image :math:`i` with :math:`P_i` positive (foreground) and :math:`Q_i` negative
(background) sampled RoIs, :math:`s_r` / :math:`t_r` the student / teacher node of RoI
:math:`r`:

.. math::
    L^{fg}_i = \frac{1}{|P_i| D} \sum_{r \in P_i} \| s_r - t_r \|_2^2
    \qquad \text{(foreground node distillation)}

    L^{bg}_i = \lambda_i \frac{1}{|Q_i| D} \sum_{r \in Q_i} \| s_r - t_r \|_2^2,
    \quad \lambda_i = \alpha \frac{|P_i|}{|Q_i|}
    \qquad \text{(background nodes, adaptive background loss weight)}

    A^{S}_{jk} = \cos(s_j, s_k),\ A^{T}_{jk} = \cos(t_j, t_k),\ j, k \in V_i = P_i \cup M_i

    L^{edge}_i = \frac{1}{2 |V_i|^2} \sum_{j, k \in V_i} (A^T_{jk} - A^S_{jk})^2
    \qquad \text{(edge distillation)}

    L_G = w_{fg} \sum_i L^{fg}_i + w_{bg} \sum_i L^{bg}_i + w_{edge} \sum_i L^{edge}_i

with :math:`M_i \subseteq Q_i` the **mined background** RoIs (background samples
mining): those whose teacher R-CNN cross-entropy against the background class is at
least a threshold, :math:`-\log p^{T}_{bg}(r) \ge \tau` -- background RoIs the teacher
finds hard, which enter the edge set; the other background RoIs are pruned from the
graph's edges (they keep their node term). The paper's total is :math:`L = L_{Det} + L_G
+ L_{Logits}`, :math:`L_{Logits}` aligning the R-CNN heads' outputs on the same RoIs; in
the authors' code (``DistillROILoss``):

.. math::
    L^{cls}_{logit} = \frac{T^2}{R (K + 1)} \sum_{r} \mathrm{KL}\big(
        \mathrm{softmax}(z^T_r / T) \,\|\, \mathrm{softmax}(z^S_r / T)\big)
    \qquad \text{(all R sampled RoIs; F.kl\_div's element mean)}

    L^{reg}_{logit} = \frac{1}{R} \sum_{r \in P} \mathrm{smoothL1}_\beta
        \big(\delta^S_{r, c_r} - \delta^T_{r, c_r}\big)
    \qquad \text{(the deltas of the RoI's class, positives only)}

Settings of the authors' COCO R50 <- R101 config (and code defaults): :math:`w_{fg} =
w_{bg} = 0.5`, :math:`w_{edge} = 1`, :math:`\alpha = 7.5`, :math:`\tau = 0.6` (code
default 0.5), cosine similarity of the flattened RoI features ("instance_sim"), no
logit or RPN distillation (``KD.ROI_CLS_ON`` / ``ROI_REG_ON`` / ``RPN_*`` off), no
full-map feature loss. Their R18 <- R50, MobileNetV2 <- R50 and EfficientNet-B0 <- R101
Faster R-CNN configs turn the logit term on (:math:`w^{cls}_{logit} = 3`,
:math:`w^{reg}_{logit} = 1`, :math:`T = 1`, :math:`\beta = 0`, i.e. L1) and weight the
edges 2. The authors sum the per-image graph terms over the images of one GPU (2 per GPU
in their 4-GPU, 8-image setting; mmdet's COCO pair also has 2 per GPU): option
``image_reduction='sum'`` (default); ``'mean'`` averages them.

**What was read.** The authors' code (above) in full for these terms; of the paper its
abstract, the review's summary and a detailed third-party summary of the paper, which
gives the paper's form :math:`L_G = \lambda_1 L^{fg}_V + \lambda_2 L^{bg}_V + \lambda_3
L_E` with :math:`\lambda_1 = \lambda_3 = 0.5` and :math:`\lambda_2 = \alpha N_{fg} /
N_{bg}` (the code's 0.5 on the edges is the factor inside ``corr_mat_mse_loss``; its
background weight carries a further 0.5) and :math:`L = L_{Det} + L_G + L_{Logits}`
(KL divergence on the heads' outputs). The paper's equation numbers were not available:
the docstrings name the terms, not numbers, and the normalisations are the code's.

Readings (options):

* RoIs: the student's sampled R-CNN RoIs of the step (positives, ground truths added
  by mmdet's sampler as by Detectron2's, and negatives), captured from its own task
  loss by :func:`~mmkd_det.models.utils.roi_records.capture_student_rois`. The
  authors' student RoI head returns the same positive / negative split.
* ``adapter='auto'``: a 1x1 conv per FPN level on the student's maps where the widths
  differ (none for R101 -> R50, as the authors); the edges are then taken on the
  adapted student features too (cosine similarity does not need equal widths, but
  one pooling serves both terms).
* ``edge_bg``: 'mined' (default, the authors'), 'none' (positives only) or 'all'
  (every sampled background RoI).
* ``adaptive_bg_weight=False``: :math:`\lambda_i = 1` (the authors' switch
  ``USE_BG_WEIGHT_SCALE``).
* Images without positives or negatives contribute 0 to the affected term (the
  authors' per-image mean of an empty set is NaN).
"""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.instance_graph import cosine_similarity_matrix, group_sum, same_group_pairs
from ..utils.roi_records import (RoICapture, RoICaptureMixin, build_roi_extractor,
                                 pool_teacher_student, teacher_roi_outputs)
from .base_distill_loss import BaseDistillLoss

EDGE_BG = ('mined', 'none', 'all')
IMAGE_REDUCTIONS = ('sum', 'mean')


def node_losses(s_nodes: Tensor,
                t_nodes: Tensor,
                pos: Tensor,
                img: Tensor,
                num_images: int,
                bg_alpha: Optional[float] = 7.5) -> Dict[str, Tensor]:
    r"""Per-image foreground and background node terms.

    .. math::
        L^{fg}_i = \frac{\sum_{r \in P_i} \|s_r - t_r\|^2}{|P_i| D},\qquad
        L^{bg}_i = \lambda_i \frac{\sum_{r \in Q_i} \|s_r - t_r\|^2}{|Q_i| D},\qquad
        \lambda_i = \alpha |P_i| / |Q_i| \ (\text{or } 1 \text{ if } \alpha \text{ is None})

    An empty :math:`P_i` (:math:`Q_i`) gives :math:`L^{fg}_i = 0` (:math:`L^{bg}_i = 0`).

    Args:
        s_nodes (Tensor): (N, D) student node features (flattened RoI features).
        t_nodes (Tensor): (N, D) teacher node features (detached here).
        pos (Tensor): (N,) bool, positive (foreground) RoIs; the others are background.
        img (Tensor): (N,) long image index of each RoI.
        num_images (int): B.
        bg_alpha (float, optional): α of the adaptive background weight; None: λ = 1.

    Returns:
        dict: ``fg`` and ``bg``, each (B,) per-image terms.
    """
    if s_nodes.shape != t_nodes.shape or s_nodes.dim() != 2:
        raise ValueError(f'DSIG: student nodes {tuple(s_nodes.shape)} and teacher nodes '
                         f'{tuple(t_nodes.shape)} must both be (N, D) with the same D: map the '
                         f'student onto the teacher\'s width (adapter) and pool both with the '
                         f'same RoI output size.')
    dim = s_nodes.shape[1]
    sq = (s_nodes - t_nodes.detach()).pow(2).sum(1)
    posf = pos.to(sq.dtype)
    n_fg = group_sum(posf, img, num_images)
    n_bg = group_sum(1 - posf, img, num_images)
    fg = group_sum(sq * posf, img, num_images) / (n_fg.clamp(min=1) * dim)
    bg = group_sum(sq * (1 - posf), img, num_images) / (n_bg.clamp(min=1) * dim)
    if bg_alpha is not None:
        bg = bg * bg_alpha * n_fg / n_bg.clamp(min=1)
    return dict(fg=fg, bg=bg)


def edge_loss(s_nodes: Tensor, t_nodes: Tensor, in_graph: Tensor, img: Tensor,
              num_images: int) -> Tensor:
    r"""Per-image edge term on the cosine-similarity graphs of the nodes in ``in_graph``.

    .. math::
        L^{edge}_i = \frac{1}{2 |V_i|^2} \sum_{j, k \in V_i}
            \big(\cos(t_j, t_k) - \cos(s_j, s_k)\big)^2

    computed on the (N, N) matrices of the batch, masked to pairs of the same image
    (:func:`~mmkd_det.models.utils.instance_graph.same_group_pairs`); an image with
    :math:`V_i = \emptyset` gives 0.

    Args:
        s_nodes (Tensor): (N, D_s) student nodes.
        t_nodes (Tensor): (N, D_t) teacher nodes (detached here).
        in_graph (Tensor): (N,) bool, the nodes of the edge set :math:`V_i`.
        img (Tensor): (N,) long image index.
        num_images (int): B.

    Returns:
        Tensor: (B,) per-image terms.
    """
    a_s = cosine_similarity_matrix(s_nodes)
    with torch.no_grad():
        a_t = cosine_similarity_matrix(t_nodes.detach())
    pairs = same_group_pairs(img, in_graph).to(a_s.dtype)
    row = ((a_t - a_s).pow(2) * pairs).sum(1)
    n_nodes = group_sum(in_graph.to(a_s.dtype), img, num_images)
    return 0.5 * group_sum(row, img, num_images) / n_nodes.pow(2).clamp(min=1)


def mine_background(t_logits: Tensor, pos: Tensor, bg_class: int, thr: float) -> Tensor:
    r"""Background samples mining: negatives whose teacher cross-entropy against the
    background class reaches ``thr``, :math:`-\log \mathrm{softmax}(z^T_r)_{bg} \ge \tau`.

    Args:
        t_logits (Tensor): (N, K + 1) teacher R-CNN logits on the RoIs.
        pos (Tensor): (N,) bool positives (never mined).
        bg_class (int): index of the background logit (mmdet: ``num_classes``).
        thr (float): τ.

    Returns:
        Tensor: (N,) bool.
    """
    ce = -torch.log_softmax(t_logits.detach().float(), 1)[:, bg_class]
    return (~pos) & (ce >= thr)


def logit_cls_kd(s_logits: Tensor, t_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Classification part of :math:`L_{Logits}` (authors' ``DistillROILoss``):

    .. math::
        \frac{T^2}{R (K + 1)} \sum_{r, k} p^T_{rk} (\log p^T_{rk} - \log p^S_{rk}),
        \quad p = \mathrm{softmax}(z / T)

    i.e. ``F.kl_div(log_softmax(s / T), softmax(t / T)) * T**2`` with its default
    element-wise mean.

    Args:
        s_logits (Tensor): (R, K + 1) student R-CNN logits.
        t_logits (Tensor): (R, K + 1) teacher logits on the same RoIs (detached here).
        temperature (float): T.

    Returns:
        Tensor: scalar; 0 when R = 0.
    """
    if s_logits.shape != t_logits.shape:
        raise ValueError(f'DSIG: student R-CNN logits {tuple(s_logits.shape)} vs teacher '
                         f'{tuple(t_logits.shape)}; both heads need the same num_classes.')
    if s_logits.numel() == 0:
        return s_logits.sum() * 0
    log_s = torch.log_softmax(s_logits / temperature, 1)
    with torch.no_grad():
        log_t = torch.log_softmax(t_logits.detach() / temperature, 1)
    return (log_t.exp() * (log_t - log_s)).sum() / s_logits.numel() * temperature**2


def logit_reg_kd(s_deltas: Tensor,
                 t_deltas: Tensor,
                 labels: Tensor,
                 pos: Tensor,
                 beta: float = 0.0) -> Tensor:
    r"""Regression part of :math:`L_{Logits}` (authors' ``DistillROILoss``):

    .. math::
        \frac{1}{R} \sum_{r \in P} \sum_{d=1}^{4}
            \mathrm{smoothL1}_\beta\big(\delta^S_{r, 4 c_r + d} - \delta^T_{r, 4 c_r + d}\big)

    with :math:`c_r` the RoI's class (all four deltas for a class-agnostic head),
    :math:`\mathrm{smoothL1}_0` = L1, :math:`R` all sampled RoIs (positives and
    negatives), as Detectron2's box loss normalises.

    Args:
        s_deltas (Tensor): (R, 4) or (R, 4 K) student box deltas.
        t_deltas (Tensor): the teacher's, same shape (detached here).
        labels (Tensor): (R,) class of each RoI (background for negatives).
        pos (Tensor): (R,) bool positives.
        beta (float): smooth-L1 β (0: L1).

    Returns:
        Tensor: scalar; 0 when R = 0.
    """
    if s_deltas.shape != t_deltas.shape:
        raise ValueError(f'DSIG: student box deltas {tuple(s_deltas.shape)} vs teacher '
                         f'{tuple(t_deltas.shape)}; both R-CNN heads need the same classes and '
                         f'reg_class_agnostic.')
    num = s_deltas.shape[0]
    if num == 0:
        return s_deltas.sum() * 0
    if s_deltas.shape[1] == 4:
        cols = torch.arange(4, device=s_deltas.device).expand(num, 4)
    else:
        cls = labels.long().clamp(max=s_deltas.shape[1] // 4 - 1)
        cols = cls[:, None] * 4 + torch.arange(4, device=s_deltas.device)
    diff = (s_deltas.gather(1, cols) - t_deltas.detach().gather(1, cols)).abs()
    if beta > 0:
        diff = torch.where(diff < beta, 0.5 * diff.pow(2) / beta, diff - 0.5 * beta)
    return (diff.sum(1) * pos.to(diff.dtype)).sum() / num


@MODELS.register_module()
class DSIGLoss(RoICaptureMixin, BaseDistillLoss):
    r"""Structured instance graph distillation on the student's sampled RoIs.

    Returns ``loss_node_fg`` = :math:`w\,w_{fg} \sum_i L^{fg}_i`, ``loss_node_bg`` =
    :math:`w\,w_{bg} \sum_i L^{bg}_i` and ``loss_edge`` = :math:`w\,w_{edge} \sum_i
    L^{edge}_i` (``image_reduction='mean'``: means over the images), :math:`w` =
    ``loss_weight``; with the logit term on, also ``loss_logit_cls`` = :math:`w\,
    w^{cls}_{logit} L^{cls}_{logit}` and ``loss_logit_reg`` = :math:`w\, w^{reg}_{logit}
    L^{reg}_{logit}`. Needs both detectors' FPN levels their RoI extractors read (a
    recorder ``fpn=dict(source='neck', levels=[0, 1, 2, 3])`` for P2-P5 Faster R-CNN) and
    a two-stage student whose sampled RoIs :meth:`student_context` captures (the
    Distiller enters it around the student's task loss).

    Args:
        fg_weight (float): :math:`w_{fg}`. Defaults to 0.5 (authors' configs).
        bg_weight (float): :math:`w_{bg}`; 0 drops the background node term.
            Defaults to 0.5.
        edge_weight (float): :math:`w_{edge}`; 0 drops the edge term. Defaults to 1.0.
        bg_alpha (float): α of :math:`\lambda_i = \alpha |P_i| / |Q_i|`. Defaults to 7.5
            (authors' COCO configs).
        adaptive_bg_weight (bool): use :math:`\lambda_i` (True, default) or 1.
        edge_bg (str): background nodes of the edge set: 'mined' (default), 'none',
            'all'.
        mining_thr (float): τ of background mining. Defaults to 0.6 (authors' COCO
            R50 <- R101 config; their code default is 0.5).
        image_reduction (str): 'sum' (default, the authors') or 'mean' over images.
        logit_cls_weight (float): :math:`w^{cls}_{logit}`; 0 (default, the authors'
            R50 <- R101 config) leaves the classification logit term out; their R18 <- R50
            config uses 3.
        logit_reg_weight (float): :math:`w^{reg}_{logit}`; 0 (default) leaves it out;
            their R18 <- R50 config uses 1.
        temperature (float): T of the logit term. Defaults to 1.0 (authors').
        reg_beta (float): smooth-L1 β of the logit regression term. Defaults to 0 (L1,
            Detectron2's default ``SMOOTH_L1_BETA``).
        roi_extractor (dict, optional): one RoI extractor config for both sides;
            None (default): each detector's own ``bbox_roi_extractor``.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default 'auto'),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 fg_weight: float = 0.5,
                 bg_weight: float = 0.5,
                 edge_weight: float = 1.0,
                 bg_alpha: float = 7.5,
                 adaptive_bg_weight: bool = True,
                 edge_bg: str = 'mined',
                 mining_thr: float = 0.6,
                 image_reduction: str = 'sum',
                 logit_cls_weight: float = 0.0,
                 logit_reg_weight: float = 0.0,
                 temperature: float = 1.0,
                 reg_beta: float = 0.0,
                 roi_extractor: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if edge_bg not in EDGE_BG:
            raise ValueError(f'DSIGLoss: edge_bg must be one of {EDGE_BG}, got {edge_bg!r}.')
        if image_reduction not in IMAGE_REDUCTIONS:
            raise ValueError(f'DSIGLoss: image_reduction must be one of {IMAGE_REDUCTIONS}, '
                             f'got {image_reduction!r}.')
        if min(fg_weight, bg_weight, edge_weight, bg_alpha, mining_thr, logit_cls_weight,
               logit_reg_weight, reg_beta) < 0:
            raise ValueError('DSIGLoss: fg_weight, bg_weight, edge_weight, bg_alpha, '
                             'mining_thr, logit_cls_weight, logit_reg_weight and reg_beta '
                             'must be >= 0.')
        if temperature <= 0:
            raise ValueError(f'DSIGLoss: temperature must be > 0, got {temperature}.')
        self.fg_weight = float(fg_weight)
        self.bg_weight = float(bg_weight)
        self.edge_weight = float(edge_weight)
        self.bg_alpha = float(bg_alpha)
        self.adaptive_bg_weight = bool(adaptive_bg_weight)
        self.edge_bg = edge_bg
        self.mining_thr = float(mining_thr)
        self.image_reduction = image_reduction
        self.logit_cls_weight = float(logit_cls_weight)
        self.logit_reg_weight = float(logit_reg_weight)
        self.temperature = float(temperature)
        self.reg_beta = float(reg_beta)
        # an RoI extractor has no parameters (nothing in checkpoints)
        self._extractor = None if roi_extractor is None else build_roi_extractor(roi_extractor)
        self._capture: Optional[RoICapture] = None

    def _teacher_head_outputs(self, teacher, t_feats, t_rois: Tensor, rois: Tensor, softmax: bool):
        """The teacher's R-CNN logits and box deltas on the RoIs: its head on the already
        pooled teacher features when they come from its own extractor, else its full box
        branch. ``softmax``: the caller needs a background logit (mining, logit KD)."""
        head = getattr(teacher, 'roi_head', None)
        bbox_head = getattr(head, 'bbox_head', None)
        if bbox_head is None:
            raise TypeError(f'DSIGLoss: background mining (edge_bg=\'mined\') and the logit '
                            f'term need the teacher\'s R-CNN head, but the teacher '
                            f'({type(teacher).__name__}) has no roi_head.bbox_head; use '
                            f'edge_bg=\'none\' or \'all\' and no logit term.')
        if softmax and (getattr(bbox_head, 'custom_cls_channels', False)
                        or getattr(getattr(bbox_head, 'loss_cls', None), 'use_sigmoid', False)):
            raise TypeError('DSIGLoss: background mining and the logit KL need a softmax '
                            'R-CNN classifier with a background logit; the teacher\'s '
                            'classifies with sigmoids. Use edge_bg=\'none\' or \'all\' and '
                            'logit_cls_weight=0.')
        if self._extractor is not None:
            return teacher_roi_outputs(teacher, t_feats, rois)
        with torch.no_grad():
            x = head.shared_head(t_rois) if getattr(head, 'with_shared_head', False) else t_rois
            cls_score, bbox_pred = bbox_head(x)
        return cls_score.detach(), bbox_pred.detach()

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                student, teacher) -> Dict[str, Tensor]:
        if self._capture is None:
            RoICapture().take(who='DSIGLoss')  # raises the explanatory error
        record = self._capture.take(gt_instances, who='DSIGLoss')
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        ext = self._extractor if self._extractor is not None else getattr(
            getattr(student, 'roi_head', None), 'bbox_roi_extractor', None)
        num_levels = len(ext.featmap_strides) if ext is not None else len(s_feats)
        if len(s_feats) != num_levels:
            raise ValueError(f'DSIGLoss: {len(s_feats)} FPN levels recorded but the RoI '
                             f'extractor reads {num_levels}; record exactly those levels '
                             f'(recorders=dict(fpn=dict(source=\'neck\', '
                             f'levels={list(range(num_levels))}))).')
        # the record bypasses the fp32 cast of the arguments (see BaseDistillLoss): cast here
        rois = record.rois.float()
        pos = record.pos.to(rois.device)
        img = rois[:, 0].long()
        num_images = len(gt_instances)
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        s_rois, t_rois = pool_teacher_student(s_feats, t_feats, rois, student, teacher,
                                              self._extractor)
        s_nodes, t_nodes = s_rois.flatten(1), t_rois.flatten(1).detach()

        nodes = node_losses(s_nodes, t_nodes, pos, img, num_images,
                            self.bg_alpha if self.adaptive_bg_weight else None)
        use_logits = self.logit_cls_weight > 0 or self.logit_reg_weight > 0
        if self.edge_bg == 'mined' or use_logits:
            t_logits, t_deltas = self._teacher_head_outputs(
                teacher,
                t_feats,
                t_rois,
                rois,
                softmax=self.edge_bg == 'mined' or self.logit_cls_weight > 0)
        if self.edge_bg == 'mined':
            in_graph = pos | mine_background(t_logits, pos, t_logits.shape[1] - 1, self.mining_thr)
        elif self.edge_bg == 'all':
            in_graph = torch.ones_like(pos)
        else:
            in_graph = pos
        edges = edge_loss(s_nodes, t_nodes, in_graph, img, num_images)

        def reduce(per_image: Tensor) -> Tensor:
            total = per_image.sum()
            return total / max(num_images, 1) if self.image_reduction == 'mean' else total

        out = dict(
            loss_node_fg=self.loss_weight * self.fg_weight * reduce(nodes['fg']),
            loss_node_bg=self.loss_weight * self.bg_weight * reduce(nodes['bg']),
            loss_edge=self.loss_weight * self.edge_weight * reduce(edges))
        if self.logit_cls_weight > 0:
            out['loss_logit_cls'] = self.loss_weight * self.logit_cls_weight * logit_cls_kd(
                record.cls_score.float(), t_logits.float(), self.temperature)
        if self.logit_reg_weight > 0:
            out['loss_logit_reg'] = self.loss_weight * self.logit_reg_weight * logit_reg_kd(
                record.bbox_pred.float(), t_deltas.float(), record.labels.to(pos.device), pos,
                self.reg_beta)
        return out
