"""FRS: Distilling Object Detectors with Feature Richness (Du et al., NeurIPS 2021).

`Paper <https://arxiv.org/abs/2111.00674>`_, Eqs. 5-8; authors' code
``duzhixing/FRS`` (``detectors/distill_frs_single.py``). Shape shorthand: per FPN
level ``l`` features ``(N, C, H, W)``, classification logits ``(N, K, H, W)``
with ``K = A x classes`` for anchor heads (RetinaNet: 9 x 80), ``classes`` for
GFL/FCOS, ``A`` objectness channels for an RPN.

* Eq. 5: feature-richness mask :func:`feature_richness`.
* Eq. 6: FPN loss :class:`FRSFeatureLoss`; Eq. 7: head loss :class:`FRSHeadLoss`.
* Eq. 8: ``L = L_GT + alpha L_FPN + beta L_head``: the two ``loss_weight`` s.

Departures from the authors' code, each an option:

* ``normalize`` (both losses): ``'batch'`` (default) is the authors' N_l; ``'image'``
  is Eq. 6 / 7 per image.
* ``bce_input`` (:class:`FRSHeadLoss`): the authors compute the BCE on
  probabilities, ``F.binary_cross_entropy(sigmoid(s), sigmoid(t))``; the
  default ``'logits'`` computes it from the student logits. Same value while
  ``sigmoid(s)`` is below 1 in the float type (up to rounding); where it
  saturates (student logits above 16.6 in fp32) the authors' clamp gives a
  constant with zero gradient and ours keeps a gradient, see
  :class:`FRSHeadLoss`.
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss

#: how FRSHeadLoss computes the BCE of Eq. 7, see its docstring.
BCE_INPUTS = ('logits', 'probabilities')


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

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn', t_logits='teacher.cls')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=3)

    def visual_maps(self, t_logits: Sequence[torch.Tensor], **unused) -> dict:
        """Per-level (N, H, W) feature-richness masks S (Eq. 5)."""
        return {'feature richness S (Eq. 5)': [feature_richness(t) for t in t_logits]}

    def forward(self, s_feats: Sequence[torch.Tensor], t_feats: Sequence[torch.Tensor],
                t_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        sq_maps = self.squared_error_maps(self.adapt('s_feats', s_feats, t_feats), t_feats)
        losses: List[torch.Tensor] = []
        for sq, logit in zip(sq_maps, t_logits):  # sq: sum over c
            mask = feature_richness(logit)  # Eq. 5
            losses.append(_normalise(sq * mask, mask, self.normalize))
        return self.loss_weight * torch.stack(losses).sum()


@MODELS.register_module()
class FRSHeadLoss(_FRSBase):
    r"""FRS classification-head loss, Eq. 7, times ``loss_weight`` (β of Eq. 8).

    .. math::
        L_{head} = \sum_{l=1}^{M} \frac{1}{N_l} \sum_{i,j} S_{lij}
                   \sum_{c} BCE(\sigma(y^s_{lijc}), \sigma(y^t_{lijc}))

    The teacher's probabilities are soft targets. For Faster R-CNN the
    "classification head" is the RPN objectness, as in the authors' two-stage
    code (no RoI-head distillation).

    How the BCE is computed (``bce_input``):

    * ``'logits'`` (default): ``binary_cross_entropy_with_logits(s, sigmoid(t))``
      = ``softplus(s) - sigmoid(t) s``, numerically stable for every logit,
      with gradient ``sigmoid(s) - sigmoid(t)`` everywhere.
    * ``'probabilities'``: the authors' ``binary_cross_entropy(sigmoid(s),
      sigmoid(t))``, each log clamped at -100 by PyTorch. Its value is that
      of ``'logits'`` while ``sigmoid(s) < 1`` in the float type, up to the
      rounding of ``1 - sigmoid(s)`` (a multiple of 2^-24 in fp32 near 1).
      Measured in fp32 with ``sigmoid(t) = 0.3``, relative difference per
      element: below 1e-6 for ``s <= 5``, 5e-5 at ``s = 10``, 1 % at 15,
      3 % at 16.5. From ``s = 16.64`` (about ``24 ln 2``) ``sigmoid(s)`` is
      exactly 1 in fp32: the term is the constant ``100 (1 - sigmoid(t))``
      and its gradient to ``s`` is exactly 0, where ``'logits'`` gives
      ``softplus(s) - sigmoid(t) s`` (about ``s (1 - sigmoid(t))``) and the
      gradient ``1 - sigmoid(t)``. "The same value" therefore holds only
      before saturation; the gradients part there too. (PyTorch refuses BCE
      on probabilities under CUDA autocast; called as a module, as the
      Distiller does, the loss computes in fp32 with autocast off, see
      :class:`BaseDistillLoss`, so both work under ``--amp``.)

    Args:
        normalize (str): ``'batch'`` (default) or ``'image'``, see :func:`_normalise`.
        bce_input (str): ``'logits'`` (default) or ``'probabilities'``.
        **kwargs: ``loss_weight``, ``inputs``.
    """

    default_inputs = dict(s_logits='student.cls', t_logits='teacher.cls')
    same_shape_pairs = (('s_logits', 't_logits'), )
    default_adapter = None

    def __init__(self, bce_input: str = 'logits', **kwargs):
        super().__init__(**kwargs)
        if bce_input not in BCE_INPUTS:
            raise ValueError(f'FRSHeadLoss bce_input={bce_input!r}; choose one of '
                             f'{BCE_INPUTS}.')
        self.bce_input = bce_input

    def forward(self, s_logits: Sequence[torch.Tensor],
                t_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        losses: List[torch.Tensor] = []
        for s, t in zip(s_logits, t_logits):
            mask = feature_richness(t)  # Eq. 5
            target = t.detach().sigmoid()
            if self.bce_input == 'logits':
                bce = F.binary_cross_entropy_with_logits(s, target, reduction='none')
            else:
                bce = F.binary_cross_entropy(s.sigmoid(), target, reduction='none')
            bce = bce.sum(dim=1)
            losses.append(_normalise(bce * mask, mask, self.normalize))
        return self.loss_weight * torch.stack(losses).sum()
