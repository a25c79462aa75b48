r"""DKD: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation" (CVPR 2022).

`Paper <https://arxiv.org/abs/2203.08679>`_, authors' code
`megvii-research/mdistiller <https://github.com/megvii-research/mdistiller>`_ (its
``detection/`` part, on Detectron2, gives the detection setting). For logits
:math:`z` at temperature :math:`T` and target class :math:`t`:

.. math::
    \mathbf{b} = [p_t, p_{\setminus t}],\quad
    p_t = \frac{e^{z_t/T}}{\sum_j e^{z_j/T}},\quad
    p_{\setminus t} = \frac{\sum_{k \ne t} e^{z_k/T}}{\sum_j e^{z_j/T}}
    \qquad \text{(Eq. 1)}

    \hat p_i = \frac{e^{z_i/T}}{\sum_{j \ne t} e^{z_j/T}}\ (i \ne t)
    \qquad \text{(Eq. 2)}

    \mathrm{KD} = \mathrm{KL}(\mathbf{b}^{\mathcal T} \| \mathbf{b}^{\mathcal S})
    + (1 - p_t^{\mathcal T})\,\mathrm{KL}(\hat{\mathbf p}^{\mathcal T} \|
    \hat{\mathbf p}^{\mathcal S})
    = \mathrm{TCKD} + (1 - p_t^{\mathcal T})\,\mathrm{NCKD}
    \qquad \text{(Eqs. 5, 6)}

    \mathrm{DKD} = \alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}
    \qquad \text{(Eq. 7)}

Detection setting of the authors' code (``detection/model/rcnn.py``,
``detection/model/config.py``): on Faster R-CNN, DKD is applied to the R-CNN
classification logits (all ``K + 1`` classes, background included) of the
student's sampled RoIs (its own proposals after the R-CNN sampler, ground truths
added), the teacher's R-CNN head run on the same RoIs with the teacher's features;
the target of a RoI is its sampled label (background for negatives); the sum over
RoIs is divided by their number and multiplied by :math:`T^2`; ``alpha = 1``,
``beta = 0.25``, ``T = 1`` (no warm-up in detection). Here the student's logits are
the ones of its own task-loss forward (captured, the same values as a second
forward) and the teacher's come from :func:`teacher_roi_outputs`.

Readings (options): ``rois='sampled'`` (default, the authors') or ``'gt'`` (the
ground-truth boxes with their labels). The authors exclude the target from NCKD by
subtracting 1000 from its logit; here it is excluded exactly (the same value up to
:math:`e^{-1000}`).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.roi_records import (RoICapture, RoICaptureMixin, gt_rois, roi_head_outputs,
                                 teacher_roi_outputs)
from .base_distill_loss import BaseDistillLoss

DKD_ROIS = ('sampled', 'gt')


def dkd_terms(s_logits: Tensor,
              t_logits: Tensor,
              target: Tensor,
              temperature: float = 1.0) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Per-RoI TCKD, NCKD and :math:`p_t^{\mathcal T}` (Eqs. 1, 2, 5, 6), without
    the :math:`T^2` factor.

    .. math::
        \mathrm{TCKD} = \sum_{k \in \{t, \setminus t\}} b_k^{\mathcal T}
            \log \frac{b_k^{\mathcal T}}{b_k^{\mathcal S}},\qquad
        \mathrm{NCKD} = \sum_{i \ne t} \hat p_i^{\mathcal T}
            \log \frac{\hat p_i^{\mathcal T}}{\hat p_i^{\mathcal S}}

    Log-probabilities by ``logsumexp``: :math:`\log p_t = z_t/T - \mathrm{lse}(z/T)`,
    :math:`\log p_{\setminus t} = \mathrm{lse}_{k \ne t}(z_k/T) - \mathrm{lse}(z/T)`
    (no :math:`\log(1 - p_t)` cancellation), :math:`\log \hat p_i = z_i/T -
    \mathrm{lse}_{j \ne t}(z_j/T)`.

    Args:
        s_logits (Tensor): (N, K) student logits.
        t_logits (Tensor): (N, K) teacher logits (detached here).
        target (Tensor): (N,) long target class in [0, K).
        temperature (float): T.

    Returns:
        tuple: TCKD (N,), NCKD (N,), teacher target probability (N,).
    """
    if s_logits.shape != t_logits.shape or s_logits.dim() != 2:
        raise ValueError(f'DKD: student logits {tuple(s_logits.shape)} and teacher logits '
                         f'{tuple(t_logits.shape)} must both be (N, K): the same RoIs and the '
                         f'same classes (num_classes of both R-CNN heads).')
    if s_logits.shape[1] < 2:
        raise ValueError('DKD needs at least two classes (target and non-target).')
    target_mask = torch.zeros_like(s_logits, dtype=torch.bool)
    target_mask.scatter_(1, target.long().view(-1, 1), True)

    def log_probs(z: Tensor):
        z = z / temperature
        lse = z.logsumexp(1)
        others = z.masked_fill(target_mask, float('-inf'))
        lse_others = others.logsumexp(1)
        log_b = torch.stack(
            [z.gather(1,
                      target.long().view(-1, 1)).squeeze(1) - lse, lse_others - lse], 1)  # Eq. 1
        log_hat = (others - lse_others[:, None]).masked_fill(target_mask, 0.0)  # Eq. 2
        return log_b, log_hat

    s_log_b, s_log_hat = log_probs(s_logits)
    with torch.no_grad():
        t_log_b, t_log_hat = log_probs(t_logits.detach())
        t_b = t_log_b.exp()
        t_hat = t_log_hat.exp().masked_fill(target_mask, 0.0)
    tckd = (t_b * (t_log_b - s_log_b)).sum(1)
    nckd = (t_hat * (t_log_hat - s_log_hat)).sum(1)
    return tckd, nckd, t_b[:, 0]


@MODELS.register_module()
class DKDLoss(RoICaptureMixin, BaseDistillLoss):
    r"""Decoupled KD (Eq. 7) on the R-CNN classification logits of the same RoIs.

    Returns two terms, ``loss_tckd`` = :math:`w \alpha T^2 \overline{\mathrm{TCKD}}`
    and ``loss_nckd`` = :math:`w \beta T^2 \overline{\mathrm{NCKD}}` (means over the
    RoIs; their sum is DKD). Needs the teacher's FPN levels its RoI extractor reads
    (recorder ``fpn=dict(source='neck')``) and a two-stage student whose RoIs are
    captured by :meth:`student_context` (the Distiller enters it). Both R-CNN heads
    must be softmax classifiers over the same ``num_classes + 1`` classes.

    Args:
        alpha (float): TCKD weight. Defaults to 1.0 (authors' detection config).
        beta (float): NCKD weight. Defaults to 0.25 (same).
        temperature (float): T. Defaults to 1.0 (same).
        rois (str): 'sampled' (default) or 'gt'.
        **kwargs: ``loss_weight`` (default 1), ``inputs``.
    """

    default_inputs = dict(t_feats='teacher.fpn')
    default_adapter = None

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 0.25,
                 temperature: float = 1.0,
                 rois: str = 'sampled',
                 **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f'DKDLoss: temperature must be > 0, got {temperature}.')
        if rois not in DKD_ROIS:
            raise ValueError(f'DKDLoss: rois must be one of {DKD_ROIS}, got {rois!r} (RPN '
                             f'proposals have no target class).')
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.rois = rois
        self._capture: Optional[RoICapture] = None

    @staticmethod
    def _check_heads(student, teacher) -> None:
        for role, model in (('student', student), ('teacher', teacher)):
            head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
            if head is None:
                raise TypeError(f'DKDLoss: the {role} ({type(model).__name__}) has no '
                                f'roi_head.bbox_head; DKD here distils R-CNN logits.')
            if getattr(head, 'custom_cls_channels', False) or \
                    getattr(getattr(head, 'loss_cls', None), 'use_sigmoid', False):
                raise TypeError(f'DKDLoss: the {role}\'s R-CNN head classifies with sigmoids '
                                f'(or custom channels); DKD needs softmax logits over '
                                f'num_classes + 1 classes.')
        if student.roi_head.bbox_head.num_classes != teacher.roi_head.bbox_head.num_classes:
            raise ValueError(f'DKDLoss: student and teacher R-CNN heads have '
                             f'{student.roi_head.bbox_head.num_classes} and '
                             f'{teacher.roi_head.bbox_head.num_classes} classes; set the same '
                             f'num_classes in both.')

    def forward(self, t_feats: Sequence[Tensor], *, gt_instances, student,
                teacher) -> Dict[str, Tensor]:
        self._check_heads(student, teacher)
        if self._capture is None:
            RoICapture().take(who='DKDLoss')  # raises the explanatory error
        record = self._capture.take(gt_instances, who='DKDLoss')
        # the record bypasses the fp32 cast of the arguments (see BaseDistillLoss): cast here
        if self.rois == 'sampled':
            rois, target, s_logits = record.rois.float(), record.labels, record.cls_score.float()
        else:
            rois, target = gt_rois(gt_instances)
            rois, target = rois.to(record.rois.device), target.to(record.rois.device)
            s_logits = roi_head_outputs(student, [f.float() for f in record.feats], rois)[0]
        t_feats = [t_feats] if isinstance(t_feats, Tensor) else list(t_feats)
        t_logits = teacher_roi_outputs(teacher, t_feats, rois.to(t_feats[0].device))[0]
        num = rois.shape[0]
        if num == 0:
            zero = s_logits.sum() * 0
            return dict(loss_tckd=zero, loss_nckd=zero)
        tckd, nckd, _ = dkd_terms(s_logits, t_logits, target, self.temperature)
        scale = self.loss_weight * self.temperature**2 / num
        return dict(
            loss_tckd=scale * self.alpha * tckd.sum(), loss_nckd=scale * self.beta * nckd.sum())
