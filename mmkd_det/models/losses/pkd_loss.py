r"""PKD: General Distillation Framework for Object Detectors via Pearson Correlation
Coefficient (Cao et al., NeurIPS 2022).

`Paper <https://arxiv.org/abs/2207.02039>`_. Shape shorthand per FPN level ``l``:
student ``S`` and teacher ``T`` features ``(N, C, H, W)``; ``M = N x H x W``, the
number of values each channel is normalised over.

The paper imitates FPN features through the Pearson correlation coefficient:
both feature maps are normalised to zero mean and unit variance, then the
squared error is halved. Equation numbers are not cited here: the paper text
is not among ``../shared/papers``; the formula below is the one of the paper's
method section as implemented by mmrazor 1.0.0 (``models/losses/pkd_loss.py``),
which this module reproduces value for value.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss

#: added to the standard deviation (not the variance) before dividing, as mmrazor.
PKD_EPS = 1e-6


def channel_standardise(feat: Tensor, eps: float = PKD_EPS) -> Tensor:
    r"""Per-channel standardisation over the batch and all positions jointly.

    .. math::
        \hat{F}_{n,c,h,w} = \frac{F_{n,c,h,w} - \mu_c}{\sigma_c + \epsilon},
        \quad \mu_c = \frac{1}{M}\sum_{n,h,w} F_{n,c,h,w},
        \quad \sigma_c = \sqrt{\frac{1}{M-1}\sum_{n,h,w} (F_{n,c,h,w} - \mu_c)^2}

    ``sigma_c`` is the unbiased (Bessel-corrected) standard deviation and
    ``eps`` is added to it, both as in mmrazor. Statistics are batch
    statistics: one mean and one std per channel for the whole batch, not per
    image. A constant channel maps to zeros. Computed in fp32.

    Args:
        feat (Tensor): (N, C, H, W).
        eps (float): added to sigma_c. Defaults to 1e-6.

    Returns:
        Tensor: (N, C, H, W), fp32.
    """
    if feat.dim() != 4:
        raise ValueError(f'PKD expects (N, C, H, W) features, got shape {tuple(feat.shape)}.')
    feat = feat.float()
    mean = feat.mean(dim=(0, 2, 3), keepdim=True)
    std = feat.std(dim=(0, 2, 3), keepdim=True)  # unbiased
    return (feat - mean) / (std + eps)


def pkd_level_loss(s_feat: Tensor, t_feat: Tensor, eps: float = PKD_EPS) -> Tensor:
    r"""PKD loss of one level (no weight).

    .. math::
        L_l = \frac{1}{2\,N C H W} \sum_{n,c,h,w}
              (\hat{S}_{n,c,h,w} - \hat{T}_{n,c,h,w})^2

    With ``eps -> 0`` this is ``(M - 1) / M`` times the mean over channels of
    ``1 - r_c``, ``r_c`` the Pearson correlation of channel ``c`` of S and T
    over its ``M = N H W`` values: the "1 - r" of the paper up to that factor.

    Args:
        s_feat (Tensor): student (N, C, H, W), already adapted / resized.
        t_feat (Tensor): teacher (N, C, H, W); detached here.
    """
    norm_s = channel_standardise(s_feat, eps)
    norm_t = channel_standardise(t_feat.detach(), eps)
    return F.mse_loss(norm_s, norm_t, reduction='mean') / 2


@MODELS.register_module()
class PKDLoss(BaseDistillLoss):
    r"""PKD feature imitation summed over the recorded levels, times ``loss_weight``.

    .. math::
        L_{PKD} = w \sum_l \frac{1}{2 N_l C_l H_l W_l}
                  \left\| \mathrm{norm}(S_l) - \mathrm{norm}(T_l) \right\|_2^2

    with ``norm`` = :func:`channel_standardise`.

    mmrazor's configs record the neck and use the first four FPN levels with
    ``loss_weight`` 6 (Faster R-CNN, Mask R-CNN-Swin teachers) or 10 (RetinaNet,
    RepPoints, FCOS teachers); see ``../shared/research/reference_impls.md``.

    Args:
        resize_student (bool): bilinearly resize (``align_corners=False``) the
            student level to the teacher's H, W when they differ. Defaults to
            True, as mmrazor's ``resize_stu``. mmrazor's ``resize_stu=False``
            (resize the teacher instead) is not offered: with False a size
            mismatch is an error.
        eps (float): see :func:`channel_standardise`. Defaults to 1e-6.
        adapter: defaults to None (PKD compares correlations per channel, so
            channel counts must match; a mismatch raises at ``setup``).
            ``'auto'`` adds a trainable 1x1 conv per level when channels differ
            (not in the paper nor mmrazor).
        **kwargs: ``loss_weight``, ``inputs``; see :class:`BaseDistillLoss`.

    Inputs ``s_feats='student.fpn'``, ``t_feats='teacher.fpn'``: per-level lists
    of (N, C, H, W) tensors (a single tensor is taken as one level).
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = None

    def __init__(self, resize_student: bool = True, eps: float = PKD_EPS, **kwargs):
        super().__init__(resize_student=resize_student, **kwargs)
        self.eps = float(eps)

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        losses: List[Tensor] = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape[1] != t.shape[1]:
                raise ValueError(
                    f'PKDLoss: channel mismatch without adapter at level {lvl}: student has '
                    f'{s.shape[1]} channels, teacher {t.shape[1]}. Set adapter=\'auto\' on '
                    f'this loss (and let the Distiller call setup).')
            if s.shape[2:] != t.shape[2:]:
                if not self.resize_student:
                    raise ValueError(
                        f'PKDLoss: level {lvl} student H, W {tuple(s.shape[2:])} differ from '
                        f'the teacher\'s {tuple(t.shape[2:])}; set resize_student=True.')
                s = F.interpolate(s, size=t.shape[2:], mode='bilinear', align_corners=False)
            losses.append(pkd_level_loss(s, t, self.eps))
        return self.loss_weight * torch.stack(losses).sum()


__all__ = ['PKDLoss', 'channel_standardise', 'pkd_level_loss']
