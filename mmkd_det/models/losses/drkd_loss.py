r"""DRKD: Ni, Yang, Wen, Zhang, "Dual Relation Knowledge Distillation for Object Detection"
(IJCAI 2023; arXiv 2302.05637).

`Paper <https://arxiv.org/abs/2302.05637>`_ (no public code found). Three terms
(:math:`L = L_{det} + \lambda_1 L_{PR} + \lambda_2 L_{IR} + \lambda_3 L_{INS}`):

* **Pixel-wise relation distillation** :math:`L_{PR}`: each FPN level of teacher and student
  goes through its own global reasoning (GloRe) module :math:`\phi` -- projection of the pixels
  onto graph nodes :math:`V = X B^\top`, graph convolution :math:`Z = ((I - A)V)W`,
  reprojection :math:`F = Z B` (:class:`~mmkd_det.models.utils.glore.GloReUnit`) -- and the
  student's relation features, through an adaptive 1x1 convolution :math:`f`, imitate the
  teacher's: :math:`L_{PR} = \frac{1}{k} \sum_{i=1}^{k} \| \phi(t_i) - f(\phi(s_i)) \|^2`.
* **Instance-wise relation distillation** :math:`L_{IR}`: instance features are RoIAligned
  from the FPN on the ground-truth boxes (:math:`\xi(x, c, o)`, one size for all); the
  relation of instances :math:`i, j` of one image is an embedded Gaussian,
  :math:`\psi(s_i, s_j) = e^{w_{ij} g_1(s_i)^\top g_2(s_j)} / \tau` with :math:`\tau` the
  sum over the image's instances, :math:`w_{ij}` from the relation filter; :math:`L_{IR} =
  \sum_{(i, j)} \| \psi(t_i, t_j) - \psi(s_i, s_j) \|^2`.
* **Instance distillation** :math:`L_{INS} = \frac{1}{n} \sum_{i=1}^{n} \| t_i - f(s_i) \|^2`
  on the same instance features.

**What was read, what is unverified.** The paper's full text was not available here; the
equations above come from a detailed third-party summary of the paper and the review
(pixel relation through GloRe modules, one per network, on multi-scale features; Gaussian
instance similarity; a relation filter "highlighting valuable relations"). Not verified,
hence named options: the **relation filter's rule** (:math:`w_{ij}`; here
``relation_topk``: None = no filter, :math:`w_{ij} = 1`; k = a stand-in that keeps, per
instance, the k strongest teacher relations in the loss), the **loss weights**
:math:`\lambda_{1,2,3}` (``pr_weight``, ``ir_weight``, ``ins_weight``, default 1), the
**normalisations** (``normalize='elements'``: means over feature elements, as the other
feature losses here; ``'paper'``: the sums the equations print), the GloRe sizes (``glore``,
GloRe's own defaults), the RoIAlign size and levels (``roi_extractor``), the embeddings
:math:`g_1, g_2` (1x1 convs of ``embed_channels``, separate for teacher and student, the
dot product scaled by :math:`1/\sqrt{d}`, ``embed_scale``) and the direction of the
softmax (over :math:`j` for each :math:`i`). This is the closest variant the available
description allows; see configs/drkd/README.md.

Other readings: the teacher's GloRe modules and embeddings are trained by the distillation
loss on the detached teacher features (the teacher network itself is frozen), as
non-local distillation does (SKD here); the GloRe units are residual with a zero-initialised
output BN (``glore=dict(residual=True, zero_init_bn=True)``), so :math:`L_{PR}` starts as
plain feature imitation through :math:`f`; :math:`f` for the instances is the base class's
adapter on the student's FPN maps ('auto': 1x1 where widths differ), applied before
RoIAlign.
"""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from ..utils.glore import GloReUnit
from ..utils.instance_graph import group_sum, same_group_pairs
from ..utils.roi_records import build_roi_extractor, gt_rois, pool_roi_features
from .base_distill_loss import BaseDistillLoss

NORMALIZE = ('elements', 'paper')
#: RetinaNet's P3-P7 strides, RoIAlign 7 x 7 (FPN-paper level mapping of each box)
DEFAULT_ROI_EXTRACTOR = dict(
    type='SingleRoIExtractor',
    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
    out_channels=256,
    featmap_strides=[8, 16, 32, 64, 128])


def pixel_relation_loss(r_s: Tensor, r_t: Tensor, normalize: str = 'elements') -> Tensor:
    r"""One level of :math:`L_{PR}`: :math:`\frac{1}{k}\sum_i \|\phi(t_i) - f(\phi(s_i))\|^2`
    over the :math:`k = BHW` pixels ('paper'), or divided by :math:`C` too ('elements').

    Args:
        r_s (Tensor): (B, C, H, W) student relation features after :math:`f`.
        r_t (Tensor): (B, C, H, W) teacher relation features.
        normalize (str): 'elements' or 'paper'.

    Returns:
        Tensor: scalar.
    """
    if r_s.shape != r_t.shape:
        raise ValueError(f'DRKD: student relation features {tuple(r_s.shape)} vs teacher '
                         f'{tuple(r_t.shape)}; f must map the student onto the teacher\'s '
                         f'width and the levels must have the same size (resize_student).')
    sq = (r_t - r_s).pow(2)
    return sq.mean() if normalize == 'elements' else sq.sum(1).mean()


def instance_loss(s_ins: Tensor, t_ins: Tensor, normalize: str = 'elements') -> Tensor:
    r""":math:`L_{INS} = \frac{1}{n}\sum_i \|t_i - f(s_i)\|^2` over the (n, C, S, S) instance
    features ('paper'), divided by :math:`C S S` as well ('elements'); 0 when n = 0."""
    if s_ins.shape != t_ins.shape:
        raise ValueError(f'DRKD: student instances {tuple(s_ins.shape)} vs teacher '
                         f'{tuple(t_ins.shape)}; adapt the student to the teacher\'s width.')
    if s_ins.shape[0] == 0:
        return s_ins.sum() * 0
    per = (t_ins.detach() - s_ins).pow(2).flatten(1)
    return per.mean() if normalize == 'elements' else per.sum(1).mean()


def instance_relations(e1: Tensor,
                       e2: Tensor,
                       img: Tensor,
                       weight: Optional[Tensor] = None,
                       scale: bool = True) -> Tensor:
    r"""Embedded-Gaussian relation matrix of the instances of each image.

    .. math::
        \psi_{ij} = \frac{e^{w_{ij} g_1(x_i)^\top g_2(x_j) / \sqrt{d}}}
                         {\sum_{j'} e^{w_{ij'} g_1(x_i)^\top g_2(x_{j'}) / \sqrt{d}}},
        \quad j, j' \text{ in the image of } i

    (:math:`\sqrt{d}` only with ``scale``); pairs of different images are 0.

    Args:
        e1 (Tensor): (n, d) embeddings :math:`g_1(x_i)` of all instances of the batch.
        e2 (Tensor): (n, d) embeddings :math:`g_2(x_j)`.
        img (Tensor): (n,) image index of each instance.
        weight (Tensor, optional): (n, n) :math:`w_{ij}` (1 if None).
        scale (bool): divide the dot products by :math:`\sqrt{d}`.

    Returns:
        Tensor: (n, n), rows of one image sum to 1.
    """
    logits = e1 @ e2.t()
    if scale:
        logits = logits / e1.shape[1]**0.5
    if weight is not None:
        logits = logits * weight
    same = same_group_pairs(img)
    return torch.softmax(logits.masked_fill(~same, float('-inf')), dim=1)


def relation_distance(psi_s: Tensor,
                      psi_t: Tensor,
                      img: Tensor,
                      num_images: int,
                      keep: Optional[Tensor] = None) -> Tensor:
    r"""Per-image :math:`\sum_{(i,j)} (\psi^T_{ij} - \psi^S_{ij})^2` over the pairs of the
    image (and in ``keep``, the relation filter), (B,)."""
    pairs = same_group_pairs(img)
    if keep is not None:
        pairs = pairs & keep
    row = ((psi_t - psi_s).pow(2) * pairs.to(psi_s.dtype)).sum(1)
    return group_sum(row, img, num_images)


def topk_relation_filter(psi_t: Tensor, img: Tensor, k: int) -> Tensor:
    """Stand-in relation filter (see the module docstring): for each instance i, the k
    largest teacher relations of its image, (n, n) bool."""
    n = psi_t.shape[0]
    if n == 0:
        return psi_t.new_zeros(0, 0, dtype=torch.bool)
    ranked = psi_t.detach().masked_fill(~same_group_pairs(img), float('-inf'))
    idx = ranked.topk(min(k, n), dim=1).indices
    keep = torch.zeros_like(ranked, dtype=torch.bool).scatter_(1, idx, True)
    return keep & same_group_pairs(img)


@MODELS.register_module()
class DRKDLoss(BaseDistillLoss):
    r"""Dual relation KD: ``loss_pr`` = :math:`w \lambda_1 \sum_l L_{PR}^l`, ``loss_ir`` =
    :math:`w \lambda_2 L_{IR}` (per-image sums averaged over images), ``loss_ins`` =
    :math:`w \lambda_3 L_{INS}`.

    Needs the FPN levels of both detectors (``fpn=dict(source='neck')``: all levels get a
    GloRe pair; the instances are pooled from the first levels the RoI extractor reads).

    Args:
        pr_weight, ir_weight, ins_weight (float): :math:`\lambda_{1,2,3}` (0 drops a term
            and its modules). Default 1.0 each (the paper's values were not available).
        normalize (str): 'elements' (default) or 'paper' (see the module docstring).
        glore (dict): :class:`GloReUnit` options (``state_channels`` 128, ``num_nodes``
            64, ``residual`` True, ``zero_init_bn`` True, ``normalize`` True).
        embed_channels (int): width of the 1x1-conv embeddings :math:`g_1, g_2`.
            Defaults to 64.
        embed_scale (bool): divide the embedded dot products by :math:`\sqrt{d}`.
            Defaults to True.
        relation_topk (int, optional): stand-in relation filter (None: no filter).
        train_teacher_modules (bool): train the teacher-side GloRe units and embeddings
            with the loss (True, default; the teacher network stays frozen) or keep them
            at their random initialisation (False: no collapse of both sides to a
            trivial relation is possible).
        roi_extractor (dict): RoI extractor for the ground-truth instances. Defaults to
            RoIAlign 7x7 over strides 8-128 (RetinaNet's P3-P7; record as many levels as
            it reads, or the student adapters of the extra levels get no gradient).
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default 'auto'),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 pr_weight: float = 1.0,
                 ir_weight: float = 1.0,
                 ins_weight: float = 1.0,
                 normalize: str = 'elements',
                 glore: Optional[dict] = None,
                 embed_channels: int = 64,
                 embed_scale: bool = True,
                 relation_topk: Optional[int] = None,
                 roi_extractor: Optional[dict] = None,
                 train_teacher_modules: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if normalize not in NORMALIZE:
            raise ValueError(f'DRKDLoss: normalize must be one of {NORMALIZE}, got '
                             f'{normalize!r}.')
        if min(pr_weight, ir_weight, ins_weight) < 0:
            raise ValueError('DRKDLoss: pr_weight, ir_weight and ins_weight must be >= 0.')
        if relation_topk is not None and relation_topk < 1:
            raise ValueError(f'DRKDLoss: relation_topk must be None or >= 1, got '
                             f'{relation_topk}.')
        self.pr_weight, self.ir_weight, self.ins_weight = (float(pr_weight), float(ir_weight),
                                                           float(ins_weight))
        self.normalize = normalize
        self.glore_cfg = dict(state_channels=128, num_nodes=64, residual=True, zero_init_bn=True)
        self.glore_cfg.update(glore or {})
        self.embed_channels = int(embed_channels)
        self.embed_scale = bool(embed_scale)
        self.relation_topk = relation_topk
        self.train_teacher_modules = bool(train_teacher_modules)
        self._extractor = build_roi_extractor(roi_extractor or DEFAULT_ROI_EXTRACTOR)
        self.student_glore = nn.ModuleList()
        self.teacher_glore = nn.ModuleList()
        self.pr_adapters = nn.ModuleList()
        self.student_embed = nn.ModuleList()
        self.teacher_embed = nn.ModuleList()

    def setup(self, shapes, name: str = '') -> None:
        """Build the GloRe pairs, the adaptive convs f and the embeddings g_1, g_2."""
        super().setup(shapes, name)
        if self.ir_weight == 0 and self.ins_weight == 0:  # no instances: no FPN adapter
            self.adapters = nn.ModuleDict()
        s_ch = [s[1] for s in shapes['s_feats']]
        t_ch = [s[1] for s in shapes['t_feats']]
        num_pool = len(self._extractor.featmap_strides)
        if len(t_ch) < num_pool:
            raise ValueError(f'{name or "DRKDLoss"}: the RoI extractor reads {num_pool} levels '
                             f'(featmap_strides {list(self._extractor.featmap_strides)}) but '
                             f'{len(t_ch)} FPN levels are recorded; record more levels or give '
                             f'roi_extractor=dict(..., featmap_strides=[...]).')
        if self.pr_weight > 0:
            self.student_glore = nn.ModuleList(GloReUnit(c, **self.glore_cfg) for c in s_ch)
            self.teacher_glore = nn.ModuleList(GloReUnit(c, **self.glore_cfg) for c in t_ch)
            self.pr_adapters = nn.ModuleList(nn.Conv2d(cs, ct, 1) for cs, ct in zip(s_ch, t_ch))
        if self.ir_weight > 0:
            # both act on teacher-width instance maps (the student's through the adapter)
            width = t_ch[0]
            self.student_embed = nn.ModuleList(
                nn.Conv2d(width, self.embed_channels, 1) for _ in range(2))
            self.teacher_embed = nn.ModuleList(
                nn.Conv2d(width, self.embed_channels, 1) for _ in range(2))
        if not self.train_teacher_modules:
            for p in list(self.teacher_glore.parameters()) + list(self.teacher_embed.parameters()):
                p.requires_grad_(False)

    def _check_built(self, num_levels: int) -> None:
        if self.pr_weight > 0 and len(self.student_glore) != num_levels:
            raise RuntimeError(f'DRKDLoss: {len(self.student_glore)} GloRe modules for '
                               f'{num_levels} levels; the Distiller builds them in setup '
                               f'(call loss.setup(shapes) when using the loss alone).')
        if self.ir_weight > 0 and not len(self.student_embed):
            raise RuntimeError('DRKDLoss: the embeddings g_1, g_2 are built in setup; call '
                               'loss.setup(shapes) when using the loss alone.')

    def pixel_relations(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        """:math:`\\sum_l L_{PR}^l` over the recorded levels."""
        total = s_feats[0].new_zeros(())
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            r_s = self.pr_adapters[lvl](self.student_glore[lvl](s))
            if r_s.shape[2:] != t.shape[2:]:
                r_s = nn.functional.interpolate(
                    r_s, size=t.shape[2:], mode='bilinear', align_corners=False)
            r_t = self.teacher_glore[lvl](t.detach())
            total = total + pixel_relation_loss(r_s, r_t, self.normalize)
        return total

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *,
                gt_instances) -> Dict[str, Tensor]:
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        self._check_built(len(s_feats))
        zero = s_feats[0].sum() * 0
        out = dict(loss_pr=zero, loss_ir=zero, loss_ins=zero)
        if self.pr_weight > 0:
            out['loss_pr'] = self.loss_weight * self.pr_weight * self.pixel_relations(
                s_feats, t_feats)
        if self.ir_weight == 0 and self.ins_weight == 0:
            return out
        rois, _ = gt_rois(gt_instances)
        rois = rois.to(s_feats[0].device)
        img = rois[:, 0].long()
        num_images = len(gt_instances)
        adapted = self.adapt('s_feats', s_feats, t_feats)
        s_ins = pool_roi_features(self._extractor, adapted, rois)
        with torch.no_grad():
            t_ins = pool_roi_features(self._extractor, [t.detach() for t in t_feats], rois)
        if self.ins_weight > 0:
            out['loss_ins'] = self.loss_weight * self.ins_weight * instance_loss(
                s_ins, t_ins, self.normalize)
        if self.ir_weight > 0:
            psi_s = instance_relations(
                self.student_embed[0](s_ins).flatten(1),
                self.student_embed[1](s_ins).flatten(1),
                img,
                scale=self.embed_scale)
            psi_t = instance_relations(
                self.teacher_embed[0](t_ins).flatten(1),
                self.teacher_embed[1](t_ins).flatten(1),
                img,
                scale=self.embed_scale)
            keep = None if self.relation_topk is None else topk_relation_filter(
                psi_t, img, self.relation_topk)
            per_image = relation_distance(psi_s, psi_t, img, num_images, keep)
            out['loss_ir'] = self.loss_weight * self.ir_weight * per_image.sum() / max(
                num_images, 1)
        return out
