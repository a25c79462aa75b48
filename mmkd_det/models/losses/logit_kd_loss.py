r"""Logit KD: Hinton et al., "Distilling the Knowledge in a Neural Network" (2015),
applied to a dense detector's classification logits.

Eq. 2 of Hinton et al. (soft targets at temperature T, gradient scale T^2):

.. math::
    L_{KD} = T^2 \, \mathrm{KL}(\sigma(z^t / T) \,\|\, \sigma(z^s / T))

Dense heads score each prior at each location. Two readings of "the class
distribution" of a prior:

* ``mode='sigmoid'`` (RetinaNet, GFL, FCOS, ATSS, the RPN: one sigmoid per
  class): a Bernoulli KL per class, summed over the classes of a prior.
* ``mode='softmax'`` (heads with a softmax over ``K`` channels per prior):
  the KL of Eq. 2 over each group of ``channels_per_prior`` logits.

The loss is averaged over priors x locations x images (one KD term per prior,
as Hinton's per-example average) and summed over FPN levels.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss

MODES = ('sigmoid', 'softmax')


def sigmoid_kd(s_logits: Tensor, t_logits: Tensor, temperature: float) -> Tensor:
    """Bernoulli KL(sigma(t/T) || sigma(s/T)) per element, times T^2 (Eq. 2).

    With ``a = t / T``, ``b = s / T`` and ``p = sigma(a)`` the KL
    ``p log(p / sigma(b)) + (1 - p) log((1 - p) / (1 - sigma(b)))`` equals
    ``BCE(b, p) - BCE(a, p)`` (``BCE(x, y) = softplus(x) - y x``, torch's
    ``binary_cross_entropy_with_logits``): one fused kernel per side instead of
    four log-sigmoids, and the teacher's side needs no graph. Same value and
    gradient (``sigma(b) - p``, times ``T``).
    """
    a = t_logits.detach() / temperature
    b = s_logits / temperature
    with torch.no_grad():
        p_t = torch.sigmoid(a)
        teacher_term = F.binary_cross_entropy_with_logits(a, p_t, reduction='none')
    kl = F.binary_cross_entropy_with_logits(b, p_t, reduction='none') - teacher_term
    return kl * temperature**2


def softmax_kd(s_logits: Tensor, t_logits: Tensor, temperature: float, dim: int) -> Tensor:
    """KL(softmax(t/T) || softmax(s/T)) along ``dim``, times T^2 (Eq. 2)."""
    log_p_t = F.log_softmax(t_logits / temperature, dim=dim)
    log_p_s = F.log_softmax(s_logits / temperature, dim=dim)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim) * temperature**2


@MODELS.register_module()
class LogitKDLoss(BaseDistillLoss):
    """Hinton KD on dense classification logits (student and teacher must have
    the same number of classes and priors per location).

    Args:
        temperature (float): T of Eq. 2. Defaults to 1.0.
        mode (str): ``'sigmoid'`` (default) or ``'softmax'``, see the module doc.
        channels_per_prior (int, optional): logits per prior: the number of
            classes (sigmoid; default: all channels of a location, i.e. the
            terms of its A priors are summed) or ``num_classes + 1`` (softmax,
            required).
        **kwargs: ``loss_weight``, ``inputs``.
    """

    default_inputs = dict(s_logits='student.cls', t_logits='teacher.cls')
    same_shape_pairs = (('s_logits', 't_logits'), )
    default_adapter = None

    def __init__(self,
                 temperature: float = 1.0,
                 mode: str = 'sigmoid',
                 channels_per_prior: Optional[int] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
        if mode == 'softmax' and not channels_per_prior:
            raise ValueError("mode='softmax' needs channels_per_prior (logits per prior, "
                             'e.g. num_classes + 1).')
        self.temperature = float(temperature)
        self.mode = mode
        self.channels_per_prior = channels_per_prior

    def level_loss(self, s: Tensor, t: Tensor) -> Tensor:
        """Mean over priors x locations x images of the per-prior KD term."""
        t = t.detach()
        n, c, h, w = s.shape
        k = self.channels_per_prior or c  # sigmoid default: a location's logits as one prior
        if c % k:
            raise ValueError(f'LogitKDLoss: {c} logit channels are not a multiple of '
                             f'channels_per_prior={k}.')
        if self.mode == 'sigmoid':
            kl = sigmoid_kd(s, t, self.temperature).view(n, c // k, k, h, w).sum(2)
        else:
            kl = softmax_kd(
                s.view(n, c // k, k, h, w), t.view(n, c // k, k, h, w), self.temperature, dim=2)
        return kl.mean()

    def forward(self, s_logits: Sequence[Tensor], t_logits: Sequence[Tensor]) -> Tensor:
        losses: List[Tensor] = [self.level_loss(s, t) for s, t in zip(s_logits, t_logits)]
        return self.loss_weight * torch.stack(losses).sum()
