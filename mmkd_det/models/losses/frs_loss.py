"""FRS: Distilling Object Detectors with Feature Richness (Du et al., NeurIPS 2021).

`Paper <https://arxiv.org/abs/2111.00674>`_. Shape shorthand: per FPN level ``l``
features ``(N, C, H, W)``, classification logits ``(N, K, H, W)`` with ``K = A x
classes`` for anchor heads (RetinaNet: 9 x 80), ``classes`` for GFL/FCOS, ``A``
objectness channels for an RPN.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss


def feature_richness(t_logits: torch.Tensor) -> torch.Tensor:
    """Feature-richness mask of one level, Eq. 5: S = max_c sigmoid(y^t_c).

    Args:
        t_logits (Tensor): teacher classification logits, (N, K, H, W).

    Returns:
        Tensor: detached mask (N, H, W) in (0, 1).
    """
    return t_logits.detach().sigmoid().amax(dim=1)


def _normalise(weighted: torch.Tensor, mask: torch.Tensor, normalize: str) -> torch.Tensor:
    """Sum of ``weighted`` (N, H, W) divided by N_l.

    ``'batch'``: N_l = sum of the mask over the whole batch (the authors' code,
    duzhixing/FRS ``distill_frs_single.py``; the released α, β assume it).
    ``'image'``: Eq. 6 literally per image (N_l over that image's H, W), then the
    mean over images.
    """
    if normalize == 'batch':
        return weighted.sum() / mask.sum().clamp(min=1e-12)
    per_image = weighted.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1e-12)
    return per_image.mean()


class _FRSBase(BaseDistillLoss):
    def __init__(self, normalize: str = 'batch', **kwargs):
        super().__init__(**kwargs)
        if normalize not in ('batch', 'image'):
            raise ValueError(f"normalize must be 'batch' or 'image', got {normalize!r}.")
        self.normalize = normalize


@MODELS.register_module()
class FRSFeatureLoss(_FRSBase):
    r"""FRS FPN loss, Eq. 6, times ``loss_weight`` (α of Eq. 8).

    .. math::
        L_{FPN} = \sum_{l=1}^{M} \frac{1}{N_l} \sum_{i,j} S_{lij}
                  \sum_{c} (F^t_{lijc} - \phi_{adapt}(F^s_{l})_{ijc})^2,
        \quad N_l = \sum_{i,j} S_{lij}

    Args:
        normalize (str): ``'batch'`` (default, authors' code: N_l summed over the
            batch) or ``'image'`` (per image, then mean). See :func:`_normalise`.
        adapter: defaults to a 3x3 conv per level (no activation), as the
            authors' ``ADAP`` module; see :class:`BaseDistillLoss`.
        **kwargs: ``loss_weight``, ``inputs``, ``resize_student``.

    Note:
        Squared error is summed over channels (not averaged), as in Eq. 6.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn',
                          t_logits='teacher.cls')
    feature_pairs = (('s_feats', 't_feats'),)
    default_adapter = dict(kernel_size=3)

    def visual_maps(self, t_logits: Sequence[torch.Tensor], **unused) -> dict:
        """Per-level (N, H, W) feature-richness masks S (Eq. 5)."""
        return {'feature richness S (Eq. 5)': [feature_richness(t) for t in t_logits]}

    def forward(self, s_feats: Sequence[torch.Tensor], t_feats: Sequence[torch.Tensor],
                t_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        losses: List[torch.Tensor] = []
        for s, t, logit in zip(s_feats, t_feats, t_logits):
            mask = feature_richness(logit)                       # Eq. 5
            sq = (t.detach() - s).pow(2).sum(dim=1)              # sum over c
            losses.append(_normalise(sq * mask, mask, self.normalize))
        return self.loss_weight * torch.stack(losses).sum()


@MODELS.register_module()
class FRSHeadLoss(_FRSBase):
    r"""FRS classification-head loss, Eq. 7, times ``loss_weight`` (β of Eq. 8).

    .. math::
        L_{head} = \sum_{l=1}^{M} \frac{1}{N_l} \sum_{i,j} S_{lij}
                   \sum_{c} BCE(\sigma(y^s_{lijc}), \sigma(y^t_{lijc}))

    The teacher's probabilities are soft targets. BCE is computed from the
    student logits (``binary_cross_entropy_with_logits``): the same value as
    BCE on probabilities, without its clamping of log(0) at -100.

    For Faster R-CNN the "classification head" is the RPN objectness, as in the
    authors' two-stage code (no RoI-head distillation).
    """

    default_inputs = dict(s_logits='student.cls', t_logits='teacher.cls')
    same_shape_pairs = (('s_logits', 't_logits'),)
    default_adapter = None

    def forward(self, s_logits: Sequence[torch.Tensor],
                t_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        losses: List[torch.Tensor] = []
        for s, t in zip(s_logits, t_logits):
            mask = feature_richness(t)                           # Eq. 5
            bce = F.binary_cross_entropy_with_logits(
                s, t.detach().sigmoid(), reduction='none').sum(dim=1)
            losses.append(_normalise(bce * mask, mask, self.normalize))
        return self.loss_weight * torch.stack(losses).sum()
