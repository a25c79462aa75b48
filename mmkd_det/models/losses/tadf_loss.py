r"""TADF: Sun, Tang, Zhang, Xiong, Tian, "Distilling Object Detectors with Task Adaptive
Regularization" (arXiv 2006.13108, 2020).

`Paper <https://arxiv.org/abs/2006.13108>`_; no official code. Instantiated on Faster
R-CNN with FPN, TADF distils three parts of the detector, each only where the teacher's
knowledge is judged useful, and lowers the distillation over training:

* **Features** (neck): imitation weighted by a Gaussian mask of the GT boxes, which
  stresses object centres and drops the background
  (:func:`~mmkd_det.models.utils.gaussian_box_masks`):

  .. math::
      L_{feat} = \frac{1}{2 \sum_{l,n,i,j} M_{l,nij}} \sum_{l,n,i,j} M_{l,nij}
                 \sum_c \big(A(S)_{l,ncij} - T_{l,ncij}\big)^2

* **Classification head** with region proposal sharing: the teacher's R-CNN head
  classifies the student's own RoIs (it has no prior on them), and only the positive
  RoIs transfer soft labels:

  .. math::
      L_{cls} = \frac{T^2}{|P|} \sum_{r \in P}
                \mathrm{KL}\big(\sigma(z^t_r / T) \,\|\, \sigma(z^s_r / T)\big)

* **Regression head**, adaptive: a positive RoI distils the teacher's box deltas
  (those of the RoI's class) only where the teacher's decoded box is correct, i.e.
  closer to the RoI's GT box (IoU) than the RoI itself:

  .. math::
      L_{reg} = \frac{1}{|P'|} \sum_{r \in P'} \| \delta^s_r - \delta^t_r \|_2^2,\quad
      P' = \{ r \in P : \mathrm{IoU}(\hat b^t_r, g_r) > \mathrm{IoU}(b_r, g_r) \}

* **Distillation decay**: every term is scaled by :math:`r(t) = 1 - (t - 1) /
  t_{max}` (epoch :math:`t = 1 \dots t_{max}`), so the student ends on its own
  task loss.

The loss returns ``loss_feat`` (:math:`w_f L_{feat}`), ``loss_cls`` (:math:`w_c
L_{cls}`) and ``loss_reg`` (:math:`w_r L_{reg}`), each times ``loss_weight`` and
:math:`r(t)`.

RoIs: the student's sampled R-CNN RoIs of its own training step (positives: the
sampler's, with their labels), captured by :meth:`TADFLoss.student_context`; the
teacher's head runs on them (``teacher_roi_outputs``). The GT box :math:`g_r` of a
positive RoI is the GT of its image and class with the largest IoU (mmdet's
``MaxIoUAssigner`` picks the largest-IoU GT; the capture does not keep its index).

What was read: the review (Cheng et al., IEEE Access 2023, Sec. III and Tables 1, 3),
the paper's abstract, DeFeat's one-line summary ("Gaussian masked object regions in
neck features and positive samples in detection head") and a later paper's statement
of the decay :math:`r(t)`. The paper's own text was not available, so its equations,
numbers and hyper-parameters are unverified here; every reading below is an option:

* ``sigma_ratio`` (:math:`\sigma_x = \rho w, \sigma_y = \rho h`, default 0.5: the box
  edge is one standard deviation from the centre), ``clip_to_box`` (default True:
  0 outside the box), ``gt_levels`` ('all': every box on every level, default;
  'roi': each box on its RoI-rule level);
* ``cls_rois`` ('positive', default, as the review; 'all': every sampled RoI),
  ``temperature`` (default 1);
* ``reg_gate`` ('proposal', default: teacher box better than the RoI; 'student':
  better than the student's decoded box, the bound of Chen et al. 2017; 'none':
  every positive RoI), ``reg_loss`` ('l2', default, or 'smooth_l1');
* ``decay`` ('epoch', default: :math:`r(t)` per epoch from mmengine's message hub;
  'iter': :math:`1 - i / i_{max}` per iteration; 'none');
* weights ``feat_weight``, ``cls_weight``, ``reg_weight`` (defaults 1; the configs
  set the feature weight to FGFI's 0.01, the method TADF's feature term refines).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils import check_level_strides, map_gt_levels, pad_gt, resolve_strides
from ..utils.gaussian_masks import gaussian_box_masks
from ..utils.roi_records import RoICapture, RoICaptureMixin, teacher_roi_outputs
from .base_distill_loss import BaseDistillLoss

GT_LEVELS = ('all', 'roi')
CLS_ROIS = ('positive', 'all')
REG_GATES = ('proposal', 'student', 'none')
REG_LOSSES = ('l2', 'smooth_l1')
DECAYS = ('epoch', 'iter', 'none')


def gaussian_feature_loss(s_feats: Sequence[Tensor], t_feats: Sequence[Tensor],
                          masks: Sequence[Tensor]) -> Tensor:
    r""":math:`L_{feat}` (module docstring): the mask-weighted mean over locations of
    all levels of :math:`\sum_c (S - T)^2`, halved.

    Args:
        s_feats (Sequence[Tensor]): per level (B, C, H, W) adapted student features.
        t_feats (Sequence[Tensor]): per level (B, C, H, W) teacher features (detached
            here).
        masks (Sequence[Tensor]): per level (B, H, W) weights M.

    Returns:
        Tensor: scalar; 0 when every mask is 0.
    """
    num, den = [], []
    for s, t, m in zip(s_feats, t_feats, masks):
        num.append((m * (s - t.detach()).pow(2).sum(1)).sum())
        den.append(m.sum())
    return torch.stack(num).sum() / (2 * torch.stack(den).sum()).clamp(min=1e-6)


def soft_label_kl(s_logits: Tensor, t_logits: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Per RoI :math:`T^2 \mathrm{KL}(\sigma(z^t/T) \| \sigma(z^s/T))`, (N,).

    Args:
        s_logits (Tensor): (N, K + 1) student R-CNN logits.
        t_logits (Tensor): (N, K + 1) teacher logits (detached here).
        temperature (float): T.
    """
    t_log = F.log_softmax(t_logits.detach() / temperature, dim=1)
    s_log = F.log_softmax(s_logits / temperature, dim=1)
    return (t_log.exp() * (t_log - s_log)).sum(1) * temperature**2


def class_deltas(bbox_pred: Tensor, labels: Tensor) -> Tensor:
    """The (R, 4) deltas of each RoI's class from (R, 4) class-agnostic or (R, 4 K)
    class-specific R-CNN regression outputs (background labels read class 0: mask
    those RoIs)."""
    if bbox_pred.shape[1] == 4:
        return bbox_pred
    per_class = bbox_pred.view(bbox_pred.shape[0], -1, 4)
    index = labels.clamp(max=per_class.shape[1] - 1).view(-1, 1, 1).expand(-1, 1, 4)
    return per_class.gather(1, index).squeeze(1)


def matched_gt(rois: Tensor, labels: Tensor, gt: Tensor, gt_labels: Tensor, valid: Tensor) -> tuple:
    """For every RoI the GT box of its image and class with the largest IoU.

    Args:
        rois (Tensor): (R, 5) ``(image, x1, y1, x2, y2)``.
        labels (Tensor): (R,) RoI classes.
        gt (Tensor): (B, G, 4) padded GT boxes; ``gt_labels`` (B, G), ``valid`` (B, G).

    Returns:
        tuple: (R, 4) matched GT boxes, (R,) their IoU with the RoI (-1 where the
        image has no GT of that class).
    """
    from mmdet.structures.bbox import bbox_overlaps
    if gt.shape[1] == 0:
        return rois.new_zeros(rois.shape[0], 4), rois.new_full((rois.shape[0], ), -1.0)
    img = rois[:, 0].long()
    boxes = gt[img]  # (R, G, 4)
    iou = bbox_overlaps(rois[:, None, 1:].contiguous(), boxes.contiguous())[:, 0]  # (R, G)
    ok = valid[img] & (gt_labels[img] == labels[:, None])
    best, index = iou.masked_fill(~ok, -1.0).max(dim=1)
    return boxes.gather(1, index.view(-1, 1, 1).expand(-1, 1, 4)).squeeze(1), best


@MODELS.register_module()
class TADFLoss(RoICaptureMixin, BaseDistillLoss):
    """Task adaptive distillation of a two-stage detector (module docstring).

    Needs the neck levels (recorder ``fpn=dict(source='neck')``; the RoI head reads
    the first four, P2-P5) of both detectors and a two-stage student whose sampled
    RoIs are captured by :meth:`student_context` (the Distiller enters it).

    Args:
        feat_weight, cls_weight, reg_weight (float): w_f, w_c, w_r. Default 1.
        sigma_ratio (float): rho of the Gaussian mask. Defaults to 0.5.
        clip_to_box (bool): mask 0 outside the boxes. Defaults to True.
        gt_levels (str): 'all' (default) or 'roi'.
        finest_scale (float), level_offset (int): the RoI level rule of
            ``gt_levels='roi'``.
        cls_rois (str): 'positive' (default) or 'all'.
        temperature (float): T. Defaults to 1.
        reg_gate (str): 'proposal' (default), 'student' or 'none'.
        reg_loss (str): 'l2' (default) or 'smooth_l1' (``beta`` 1).
        decay (str): 'epoch' (default), 'iter' or 'none'.
        strides (Sequence[int], optional): strides of the recorded levels; None
            (default): the student's dense head's (``rpn_head``).
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default 'auto': a 1x1
            conv per level where the widths differ), ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 feat_weight: float = 1.0,
                 cls_weight: float = 1.0,
                 reg_weight: float = 1.0,
                 sigma_ratio: float = 0.5,
                 clip_to_box: bool = True,
                 gt_levels: str = 'all',
                 finest_scale: float = 56.0,
                 level_offset: int = 0,
                 cls_rois: str = 'positive',
                 temperature: float = 1.0,
                 reg_gate: str = 'proposal',
                 reg_loss: str = 'l2',
                 decay: str = 'epoch',
                 strides: Optional[Sequence[int]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        for key, value, allowed in (('gt_levels', gt_levels,
                                     GT_LEVELS), ('cls_rois', cls_rois,
                                                  CLS_ROIS), ('reg_gate', reg_gate, REG_GATES),
                                    ('reg_loss', reg_loss, REG_LOSSES), ('decay', decay, DECAYS)):
            if value not in allowed:
                raise ValueError(f'TADFLoss {key}={value!r}; choose one of {allowed}.')
        if not sigma_ratio > 0:
            raise ValueError(f'TADFLoss sigma_ratio must be > 0, got {sigma_ratio}.')
        if not temperature > 0:
            raise ValueError(f'TADFLoss temperature must be > 0, got {temperature}.')
        self.feat_weight, self.cls_weight = float(feat_weight), float(cls_weight)
        self.reg_weight = float(reg_weight)
        self.sigma_ratio, self.clip_to_box = float(sigma_ratio), bool(clip_to_box)
        self.gt_levels, self.finest_scale = gt_levels, float(finest_scale)
        self.level_offset = int(level_offset)
        self.cls_rois, self.temperature = cls_rois, float(temperature)
        self.reg_gate, self.reg_loss, self.decay = reg_gate, reg_loss, decay
        self.strides = strides
        self._capture: Optional[RoICapture] = None

    def decay_factor(self) -> float:
        r""":math:`r(t)`: ``1 - epoch / max_epochs`` (0-based epoch, i.e. :math:`1 - (t - 1)
        / t_{max}`), ``1 - iter / max_iters`` or 1, from mmengine's message hub (1 when
        the runner has not set the progress); at least 0. Python numbers, no sync."""
        if self.decay == 'none':
            return 1.0
        hub = MessageHub.get_current_instance()
        keys = ('epoch', 'max_epochs') if self.decay == 'epoch' else ('iter', 'max_iters')
        now, total = hub.get_info(keys[0]), hub.get_info(keys[1])
        if now is None or not total:
            return 1.0
        return max(0.0, 1.0 - float(now) / float(total))

    @staticmethod
    def _check_heads(student, teacher) -> None:
        for role, model in (('student', student), ('teacher', teacher)):
            head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
            if head is None:
                raise TypeError(f'TADFLoss: the {role} ({type(model).__name__}) has no '
                                f'roi_head.bbox_head; TADF distils a two-stage detector\'s '
                                f'R-CNN head (Faster R-CNN).')
            if getattr(head, 'custom_cls_channels', False) or \
                    getattr(getattr(head, 'loss_cls', None), 'use_sigmoid', False):
                raise TypeError(f'TADFLoss: the {role}\'s R-CNN head classifies with sigmoids; '
                                f'the soft labels need softmax logits over num_classes + 1.')
        s_head, t_head = student.roi_head.bbox_head, teacher.roi_head.bbox_head
        if s_head.num_classes != t_head.num_classes:
            raise ValueError(f'TADFLoss: student and teacher R-CNN heads have '
                             f'{s_head.num_classes} and {t_head.num_classes} classes; set the '
                             f'same num_classes in both.')

    def masks(self,
              t_feats: Sequence[Tensor],
              gt_instances,
              strides=None,
              batch_img_metas=None) -> List[Tensor]:
        """Per-level (B, H, W) Gaussian masks M of the batch's GT boxes."""
        strides = resolve_strides(self.strides or strides, len(t_feats), 'TADFLoss')
        check_level_strides(t_feats, strides, batch_img_metas, 'TADFLoss')
        gt, _, valid = pad_gt(gt_instances, t_feats[0].device)
        levels = None
        if self.gt_levels == 'roi':
            levels = map_gt_levels(gt, len(t_feats), self.finest_scale, self.level_offset)
        with torch.no_grad():
            return gaussian_box_masks(gt, valid, [tuple(f.shape[-2:]) for f in t_feats], strides,
                                      self.sigma_ratio, self.clip_to_box, levels)

    def visual_maps(self,
                    t_feats,
                    gt_instances,
                    strides=None,
                    batch_img_metas=None,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W) Gaussian mask M."""
        t_feats = [t_feats] if isinstance(t_feats, Tensor) else list(t_feats)
        return {'Gaussian mask M': self.masks(t_feats, gt_instances, strides, batch_img_metas)}

    def head_terms(self, record, t_feats: Sequence[Tensor], gt_instances,
                   teacher) -> Dict[str, Tensor]:
        """``L_cls`` and ``L_reg`` (unweighted) on the captured sampled RoIs."""
        rois, labels = record.rois.float(), record.labels
        pos = record.pos
        s_cls, s_reg = record.cls_score.float(), record.bbox_pred.float()
        t_cls, t_reg = teacher_roi_outputs(teacher, t_feats, rois.to(t_feats[0].device))
        t_cls, t_reg = t_cls.float(), t_reg.float()
        if s_cls.shape != t_cls.shape or s_reg.shape != t_reg.shape:
            raise ValueError(f'TADFLoss: student R-CNN outputs {tuple(s_cls.shape)}, '
                             f'{tuple(s_reg.shape)} vs teacher {tuple(t_cls.shape)}, '
                             f'{tuple(t_reg.shape)}; both heads need the same classes and the '
                             f'same reg_class_agnostic.')
        # classification: soft labels on the positive (or all) RoIs
        w_cls = pos.float() if self.cls_rois == 'positive' else torch.ones_like(pos.float())
        kl = soft_label_kl(s_cls, t_cls, self.temperature)
        loss_cls = (kl * w_cls).sum() / w_cls.sum().clamp(min=1)
        # regression: positive RoIs where the teacher's box is correct
        s_delta, t_delta = class_deltas(s_reg, labels), class_deltas(t_reg, labels)
        gate = pos
        if self.reg_gate != 'none':
            from mmdet.structures.bbox import bbox_overlaps
            gt, gt_labels, valid = pad_gt(gt_instances, rois.device)
            g_box, roi_iou = matched_gt(rois, labels, gt, gt_labels, valid)
            coder = teacher.roi_head.bbox_head.bbox_coder
            t_iou = bbox_overlaps(coder.decode(rois[:, 1:], t_delta), g_box, is_aligned=True)
            if self.reg_gate == 'proposal':
                ref = roi_iou
            else:
                s_box = coder.decode(rois[:, 1:], s_delta.detach())
                ref = bbox_overlaps(s_box, g_box, is_aligned=True)
            gate = pos & (roi_iou >= 0) & (t_iou > ref)
        diff = s_delta - t_delta.detach()
        if self.reg_loss == 'l2':
            per_roi = diff.pow(2).sum(1)
        else:
            per_roi = F.smooth_l1_loss(
                diff, torch.zeros_like(diff), reduction='none', beta=1.0).sum(1)
        w_reg = gate.float()
        loss_reg = (per_roi * w_reg).sum() / w_reg.sum().clamp(min=1)
        return dict(loss_cls=loss_cls, loss_reg=loss_reg)

    def forward(self,
                s_feats: Sequence[Tensor],
                t_feats: Sequence[Tensor],
                *,
                gt_instances,
                student,
                teacher,
                strides=None,
                batch_img_metas=None) -> Dict[str, Tensor]:
        self._check_heads(student, teacher)
        if self._capture is None:
            RoICapture().take(who='TADFLoss')  # raises the explanatory error
        record = self._capture.take(gt_instances, who='TADFLoss')
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        masks = self.masks(t_feats, gt_instances, strides, batch_img_metas)
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape != t.shape:
                raise ValueError(f'TADFLoss: level {lvl}: adapted student {tuple(s.shape)} vs '
                                 f'teacher {tuple(t.shape)}; let the Distiller call setup (it '
                                 f'builds the adapters) or set adapter / resize_student.')
        loss_feat = gaussian_feature_loss(s_feats, t_feats, masks)
        heads = self.head_terms(record, t_feats, gt_instances, teacher)
        scale = self.loss_weight * self.decay_factor()
        return dict(
            loss_feat=scale * self.feat_weight * loss_feat,
            loss_cls=scale * self.cls_weight * heads['loss_cls'],
            loss_reg=scale * self.reg_weight * heads['loss_reg'])
