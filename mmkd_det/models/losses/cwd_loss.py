r"""CWD: Channel-wise Knowledge Distillation for Dense Prediction (Shu et al., ICCV 2021).

`Paper <https://arxiv.org/abs/2011.13256>`_ (its first arXiv version is titled
"Channel-wise Distillation for Semantic Segmentation", the name mmrazor's
docstring uses). Shape shorthand per level: features or logits ``(N, C, H, W)``.

Each channel map is turned into a distribution over its ``H x W`` positions by
a softmax at temperature ``tau``; the student's channel distributions imitate
the teacher's through KL(teacher || student), scaled by ``tau^2`` and averaged
over channels (the paper) and images (the implementation). Equation numbers
are not cited: the paper text is not among ``../shared/papers``; the formula is
the paper's channel distribution loss as implemented by mmrazor 1.0.0
(``models/losses/cwd.py``, ``ChannelWiseDivergence``), reproduced value for value.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss


def channel_distributions(feat: Tensor, tau: float, log: bool = False) -> Tensor:
    r"""Spatial softmax of every channel: ``phi(y_c)_i = exp(y_{c,i} / tau) /
    sum_j exp(y_{c,j} / tau)`` over the ``H W`` positions ``i``.

    Args:
        feat (Tensor): (N, C, H, W).
        tau (float): temperature.
        log (bool): return the log-probabilities instead.

    Returns:
        Tensor: (N * C, H * W) in fp32; each row sums to 1 (``log=False``).
    """
    flat = feat.float().reshape(feat.shape[0] * feat.shape[1], -1) / tau
    return F.log_softmax(flat, dim=1) if log else F.softmax(flat, dim=1)


def cwd_level_loss(s_feat: Tensor, t_feat: Tensor, tau: float = 1.0) -> Tensor:
    r"""Channel-wise distillation loss of one level (no weight).

    .. math::
        L_l = \frac{\tau^2}{N C} \sum_{n=1}^{N} \sum_{c=1}^{C} \sum_{i=1}^{HW}
              \phi(T_{n,c})_i \left[\log \phi(T_{n,c})_i - \log \phi(S_{n,c})_i\right]

    i.e. ``tau^2`` times KL(phi(T) || phi(S)) averaged over the ``N C`` channel
    maps. The paper writes ``tau^2 / C`` for one image; the ``1 / N`` is the
    implementations' batch mean.

    Args:
        s_feat (Tensor): student (N, C, H, W), already adapted to C.
        t_feat (Tensor): teacher (N, C, H, W); detached here.
        tau (float): temperature. Defaults to 1.0.
    """
    t_feat = t_feat.detach()
    log_p_t = channel_distributions(t_feat, tau, log=True)
    log_p_s = channel_distributions(s_feat, tau, log=True)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum()
    return kl * tau**2 / (t_feat.shape[0] * t_feat.shape[1])


@MODELS.register_module()
class CWDLoss(BaseDistillLoss):
    r"""Channel-wise distillation summed over the recorded levels, times ``loss_weight``.

    .. math::
        L_{CWD} = w \sum_l \frac{\tau^2}{N C_l} \sum_{n,c}
                  \mathrm{KL}\big(\phi(T_{l,n,c}) \,\|\, \phi(\psi(S_l)_{n,c})\big)

    ``psi`` is the optional per-level 1x1 adapter (``adapter='auto'``, built
    only where student and teacher channels differ; mmrazor has none, its
    configs distil same-width necks).

    mmrazor's detection config distils the five FPN levels with ``tau=1`` and
    ``loss_weight=10`` (Faster R-CNN / RetinaNet R101 -> R50); its README number
    for GFL comes from the 0.x config that distilled the ``gfl_cls`` logits with
    ``loss_weight=5``. Point ``inputs`` at a logits record for that variant.

    Args:
        tau (float): softmax temperature. Defaults to 1.0.
        standardise (bool): standardise both sides per channel over (N, H, W)
            before the softmax (biased variance, eps 1e-5: a BatchNorm without
            affine or running statistics), as mmyolo's RTMDet distillation,
            whose connectors end in ``BN(affine=False, track_running_stats=False)``.
            Not in the paper. Defaults to False.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default ``'auto'``),
            ``resize_student`` (default False: H, W must match, as in mmrazor).

    Inputs ``s_feats='student.fpn'``, ``t_feats='teacher.fpn'``: per-level lists
    of (N, C, H, W) tensors (a single tensor is taken as one level).
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self, tau: float = 1.0, standardise: bool = False, **kwargs):
        super().__init__(**kwargs)
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}.')
        self.tau = float(tau)
        self.standardise = bool(standardise)

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        losses: List[Tensor] = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape[1:] != t.shape[1:]:
                raise ValueError(
                    f'CWDLoss: level {lvl} student (C, H, W) {tuple(s.shape[1:])} differs from '
                    f'the teacher\'s {tuple(t.shape[1:])} after adaptation. Let the Distiller '
                    f'call setup (it builds the channel adapter), or set resize_student=True '
                    f'for different H, W.')
            if self.standardise:  # batch statistics, no affine (mmyolo's connectors)
                s = F.batch_norm(s, None, None, training=True, eps=1e-5)
                t = F.batch_norm(t.detach(), None, None, training=True, eps=1e-5)
            losses.append(cwd_level_loss(s, t, self.tau))
        return self.loss_weight * torch.stack(losses).sum()


__all__ = ['CWDLoss', 'channel_distributions', 'cwd_level_loss']
