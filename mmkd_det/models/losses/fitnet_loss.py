r"""FitNets: Hints for Thin Deep Nets (Romero et al., ICLR 2015), on FPN levels.

`Paper <https://arxiv.org/abs/1412.6550>`_, hint-based training, Eq. 3:

.. math::
    L_{HT}(W_{Guided}, W_r) = \frac{1}{2} \big\| u_h(x; W_{Hint})
                              - r(v_g(x; W_{Guided}); W_r) \big\|^2

``u_h`` is the teacher's hint layer, ``v_g`` the student's guided layer and ``r``
a regressor onto the teacher's shape (the paper's convolutional regressor; here a
1x1 conv per level). Detection port, the plain baseline of the feature methods
(as in the KD-for-detection surveys' "FitNet R101-R50-FPN" rows): every FPN level
is a hint, the squared error is averaged over its elements and the levels are
summed:

.. math::
    L = w \sum_l \frac{1}{N C_l H_l W_l} \sum_{n,c,h,w}
        \big(r_l(S_l) - T_l\big)^2_{nchw}

Eq. 3's 1/2 and its sum over elements become the mean (a constant factor per
level, absorbed by ``loss_weight``). Shapes per level: ``(N, C, H, W)``.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss


@MODELS.register_module()
class FitNetLoss(BaseDistillLoss):
    """Hint learning (Eq. 3): per-level MSE between regressed student and teacher
    features, summed over levels, times ``loss_weight``.

    Args:
        **kwargs: ``loss_weight``, ``inputs`` (default ``s_feats='student.fpn'``,
            ``t_feats='teacher.fpn'``), ``adapter`` (the regressor r; default a
            1x1 conv per level even when the channels match, as FitNets always
            trains a regressor; ``'auto'`` only where they differ, ``None`` for
            none), ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=1)

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        losses: List[Tensor] = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape != t.shape:
                raise ValueError(f'FitNetLoss: level {lvl}: regressed student {tuple(s.shape)} '
                                 f'vs teacher {tuple(t.shape)}; set adapter / resize_student.')
            losses.append(F.mse_loss(s, t.detach(), reduction='mean'))
        return self.loss_weight * torch.stack(losses).sum()
