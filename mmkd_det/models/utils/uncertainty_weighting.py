r"""Per-element errors of a feature-imitation loss and their uncertainty weighting.

A feature-imitation loss that reduces squared errors with a mask and a normaliser can
hand out its unreduced terms as an :class:`ElementErrors`: per group ``l`` (an FPN
level, or the pooled RoIs) the adapted student features :math:`S_l`, the per-element
squared errors :math:`e_l = (S_l - T_l)^2`, a weight :math:`w_l` broadcastable to
:math:`e_l` (a mask, or None for 1) and the normaliser :math:`Z_l`, with

.. math::
    L = \sum_l \frac{1}{Z_l} \sum w_l \, e_l.

:func:`reduce_element_errors` evaluates that sum, and with log-variances :math:`s_l`
the uncertainty-weighted form of Prime-Aware Adaptive Distillation (PAD; Zhang et al.,
ECCV 2020), each element treated as a Gaussian of variance :math:`\sigma^2 = e^{s}`
around the teacher (negative log-likelihood up to a constant and a factor 2):

.. math::
    L_{PAD} = \sum_l \frac{1}{Z_l} \sum w_l \big( e_l\, e^{-s_l} + s_l \big).

:class:`VarianceBranch` predicts :math:`s` from the student features (a 1x1
convolution shared by all groups).
"""
from typing import List, NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

#: what one log-variance covers: one element (channel and location) or a location
#: (one value shared by the channels of a feature vector)
SIGMA_GRANULARITY = ('location', 'element')


class ElementErrors(NamedTuple):
    """Unreduced terms of a masked, normalised squared-error imitation loss.

    Attributes:
        student (list[Tensor]): per group (N, C, *spatial) adapted student features
            (the variance branch's input).
        error (list[Tensor]): per group (N, C, *spatial) squared errors
            :math:`(S - T)^2`, the teacher detached.
        weight (list[Tensor | None]): per group a weight broadcastable to ``error``
            (e.g. (N, 1, H, W) mask), None for 1.
        norm (list[Tensor]): per group the scalar normaliser :math:`Z_l` (> 0).
    """
    student: List[Tensor]
    error: List[Tensor]
    weight: List[Optional[Tensor]]
    norm: List[Tensor]


def reduce_element_errors(terms: ElementErrors,
                          log_vars: Optional[Sequence[Tensor]] = None) -> Tensor:
    r"""The loss of ``terms``, plain or uncertainty-weighted (module docstring).

    .. math::
        L = \sum_l \frac{1}{Z_l} \sum w_l e_l \quad (\text{log\_vars None}), \qquad
        L_{PAD} = \sum_l \frac{1}{Z_l} \sum w_l \big(e_l e^{-s_l} + s_l\big)

    Args:
        terms (ElementErrors): errors, weights and normalisers per group.
        log_vars (Sequence[Tensor], optional): per group :math:`s_l`, broadcastable
            to the group's error ((N, C, ...) or (N, 1, ...)).

    Returns:
        Tensor: scalar (0 in the graph for empty groups).
    """
    if not terms.error:
        raise ValueError('reduce_element_errors: no groups of errors given.')
    if log_vars is not None and len(log_vars) != len(terms.error):
        raise ValueError(f'reduce_element_errors: {len(log_vars)} log-variance maps for '
                         f'{len(terms.error)} groups of errors.')
    total = []
    for i, (err, weight, norm) in enumerate(zip(terms.error, terms.weight, terms.norm)):
        if log_vars is not None:
            s = log_vars[i]
            # expand s over the channels it is shared by: its term counts once per element
            err = err * torch.exp(-s) + s.expand_as(err)
        if weight is not None:
            err = err * weight
        total.append(err.sum() / norm)
    return torch.stack(total).sum()


class VarianceBranch(nn.Module):
    r"""Log-variance :math:`s` of every element (or location) from the student features.

    A 1x1 convolution (shared by all groups) from the ``channels`` of the adapted
    student features to ``channels`` (``granularity='element'``) or 1
    (``'location'``) outputs; optionally bounded, :math:`s = b \tanh(z / b)`.

    Args:
        channels (int): C of the student features it reads (the teacher's width).
        granularity (str): 'location' (default) or 'element'.
        bound (float, optional): b above; None (default) leaves :math:`s`
            unbounded.
        init (str): 'zeros' (default): weight and bias 0, so :math:`s = 0`,
            :math:`\sigma = 1` and the weighted loss starts equal to the plain one;
            'default': PyTorch's initialisation.
        detach_input (bool): predict from detached student features (the branch
            then trains only itself). Defaults to False.
    """

    def __init__(self,
                 channels: int,
                 granularity: str = 'location',
                 bound: Optional[float] = None,
                 init: str = 'zeros',
                 detach_input: bool = False):
        super().__init__()
        if granularity not in SIGMA_GRANULARITY:
            raise ValueError(f'VarianceBranch: granularity must be one of '
                             f'{SIGMA_GRANULARITY}, got {granularity!r}.')
        if bound is not None and not bound > 0:
            raise ValueError(f'VarianceBranch: bound must be > 0 or None, got {bound}.')
        if init not in ('zeros', 'default'):
            raise ValueError(f"VarianceBranch: init must be 'zeros' or 'default', got {init!r}.")
        out = channels if granularity == 'element' else 1
        self.granularity = granularity
        self.bound = None if bound is None else float(bound)
        self.detach_input = bool(detach_input)
        self.conv = nn.Conv2d(channels, out, kernel_size=1)
        if init == 'zeros':
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Per group (N, C or 1, *spatial) log-variances of (N, C, *spatial) features
        (spatial: (H, W), or nothing for feature vectors)."""
        out = []
        for f in feats:
            if f.dim() not in (2, 4):
                raise ValueError(f'VarianceBranch: features must be (N, C) or (N, C, H, W), '
                                 f'got {tuple(f.shape)}.')
            x = f.detach() if self.detach_input else f
            flat = x.dim() == 2
            z = self.conv(x[:, :, None, None] if flat else x)
            z = z[:, :, 0, 0] if flat else z
            if self.bound is not None:
                z = self.bound * torch.tanh(z / self.bound)
            out.append(z)
        return out
