r"""SSIM-KD: Structural Knowledge Distillation for Object Detection (de Rijk, Schneider,
Cordts, Gavrila; NeurIPS 2022).

`Paper <https://arxiv.org/abs/2211.13133>`_ (NeurIPS proceedings: `abstract
<https://proceedings.neurips.cc/paper_files/paper/2022/hash/18c0102cb7f1a02c14f0929089b2e576-Abstract-Conference.html>`_).
The authors publish no repository of their own; the paper says the change is "one line
of code", and public listings of the paper point to kornia's ``ssim_loss`` as its code
(kornia's defaults are the paper's window and constants), which is the reference for
the readings below: with the min-max rescaling applied first, :class:`SSIMKDLoss` equals
kornia 0.9.0's ``ssim_loss`` (tested where kornia is installed).

Shapes per neck level ``r``: student ``S`` and teacher ``T`` features ``(N, C, H, W)``.
The feature loss of the paper (Eq. 1), with the SSIM dissimilarity as ``L_\epsilon``:

.. math::
    L_{feat} = \sum_{r=1}^{R} \frac{1}{N_r} \sum_{h,w,c}
               L_{SSIM}\big(\psi(\phi(S_r)), \psi(T_r)\big)_{h,w,c}

``phi`` is an optional 1x1 conv adapter, ``psi`` a min-max rescaling to ``[0, 1]``
and ``N_r`` the number of elements of level ``r`` (here also over the batch: a
mean over ``N C H W``). Local statistics are taken per channel in a Gaussian window
(11 x 11, sigma 1.5) around every position (Sec. 3.2):

.. math::
    l = \frac{2\mu_S\mu_T + C_1}{\mu_S^2 + \mu_T^2 + C_1},\quad
    c = \frac{2\sigma_S\sigma_T + C_2}{\sigma_S^2 + \sigma_T^2 + C_2},\quad
    s = \frac{\sigma_{ST} + C_3}{\sigma_S\sigma_T + C_3}

with ``C_1 = (K_1 L)^2``, ``C_2 = (K_2 L)^2``, ``C_3 = C_2 / 2``, ``K_1 = 0.01``,
``K_2 = 0.03`` and ``L`` the dynamic range (1 after the min-max rescaling), and (Sec. 3.2)

.. math::
    SSIM = l^\alpha c^\beta s^\gamma, \qquad L_{SSIM} = \frac{1 - SSIM}{2}

with ``alpha = beta = gamma = 1`` in the main results (the ablation drops terms).
With all three exponents 1 and ``C_3 = C_2/2`` the product is the familiar

.. math::
    SSIM = \frac{(2\mu_S\mu_T + C_1)(2\sigma_{ST} + C_2)}
                {(\mu_S^2 + \mu_T^2 + C_1)(\sigma_S^2 + \sigma_T^2 + C_2)}

which is what is computed then (no square roots). Eq. 1 is the paper's first
equation (Sec. 3.1); the numbers after it are not checked: the paper text is not among
``../shared/papers``, and these facts come from its method section as quoted and
translated in public summaries (the README lists them).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss

#: SSIM's stabilising constants relative to the dynamic range (Wang et al. 2004; the paper)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: kornia's ``eps`` added to the SSIM denominator
SSIM_EPS = 1e-12
#: added to max - min in the min-max rescaling (a constant map becomes zeros)
MINMAX_EPS = 1e-6

WINDOWS = ('gaussian', 'uniform')
PADDINGS = ('reflect', 'replicate', 'zeros')
MINMAX_SCOPES = ('image', 'channel', 'batch', None)


def window_1d(size: int,
              sigma: float = 1.5,
              kind: str = 'gaussian',
              device=None,
              dtype=torch.float32) -> Tensor:
    r"""One axis of the separable SSIM window, normalised to sum 1.

    .. math::
        g_i = \frac{\exp(-x_i^2 / 2\sigma^2)}{\sum_j \exp(-x_j^2 / 2\sigma^2)},
        \quad x_i = i - \lfloor k/2 \rfloor \ (+\tfrac{1}{2} \text{ if } k \text{ even})

    (kornia's ``get_gaussian_kernel1d``); ``kind='uniform'`` gives ``1/k``. The 2-D
    window is the outer product ``g g^T``.

    Args:
        size (int): k, the side of the window.
        sigma (float): Gaussian standard deviation. Defaults to 1.5.
        kind (str): ``'gaussian'`` or ``'uniform'``.

    Returns:
        Tensor: (k,).
    """
    if kind not in WINDOWS:
        raise ValueError(f'window must be one of {WINDOWS}, got {kind!r}.')
    if size < 1:
        raise ValueError(f'window_size must be >= 1, got {size}.')
    if kind == 'uniform':
        return torch.full((size, ), 1.0 / size, device=device, dtype=dtype)
    # float64 then cast: the weights then sum to 1 within float32 rounding, which
    # keeps the spurious variance of flat windows (E[x^2] - mu^2) small
    x = torch.arange(size, dtype=torch.float64) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    g = torch.exp(-x.pow(2) / (2.0 * sigma**2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def _pad_mode(padding: str, h: int, w: int, pad: int) -> str:
    """torch's pad mode; 'reflect' needs ``pad < H, W`` and falls back to 'replicate'
    on smaller maps (decided from the shape: no host synchronisation)."""
    if padding == 'zeros':
        return 'constant'
    if padding == 'reflect' and (pad >= h or pad >= w):
        return 'replicate'
    return padding


def local_filter(x: Tensor, window: Tensor, padding: str = 'reflect') -> Tensor:
    r"""Per-channel weighted local mean ``\sum_{i,j} g_i g_j x_{h+i-p, w+j-p}``
    ('same' size: the map is padded by ``p = (k-1)//2`` before, ``k-1-p`` after).

    Args:
        x (Tensor): (B, C, H, W).
        window (Tensor): (k,) separable weights, see :func:`window_1d`.
        padding (str): ``'reflect'`` (kornia's ``filter2d`` default; ``'replicate'``
            on maps with a side ``<= p``), ``'replicate'`` or ``'zeros'``.

    Returns:
        Tensor: (B, C, H, W).
    """
    b, c, h, w = x.shape
    k = window.numel()
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    mode = _pad_mode(padding, h, w, max(before, after))
    flat = x.reshape(b * c, 1, h, w)
    if k > 1:
        flat = F.pad(flat, (before, after, before, after), mode=mode)
        flat = F.conv2d(flat, window.view(1, 1, k, 1).to(flat))
        flat = F.conv2d(flat, window.view(1, 1, 1, k).to(flat))
    return flat.reshape(b, c, h, w)


def local_moments(s: Tensor,
                  t: Tensor,
                  window: Tensor,
                  padding: str = 'reflect') -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""Windowed statistics of the SSIM terms (Sec. 3.2), per position and channel:

    .. math::
        \mu_S = g * S,\ \mu_T = g * T,\ \sigma_S^2 = g * S^2 - \mu_S^2,\
        \sigma_T^2 = g * T^2 - \mu_T^2,\ \sigma_{ST} = g * (S T) - \mu_S \mu_T

    (``*`` the windowed mean of :func:`local_filter`; the biased, weighted moments
    of SSIM and kornia).

    Args:
        s, t (Tensor): (N, C, H, W) each.

    Returns:
        tuple: ``mu_s, mu_t, var_s, var_t, cov``, each (N, C, H, W).
    """
    n = s.shape[0]
    stacked = torch.cat([s, t, s * s, t * t, s * t], dim=0)
    mu_s, mu_t, ss, tt, st = local_filter(stacked, window, padding).split(n, dim=0)
    return mu_s, mu_t, ss - mu_s * mu_s, tt - mu_t * mu_t, st - mu_s * mu_t


def minmax_rescale(x: Tensor, scope: Optional[str] = 'image', eps: float = MINMAX_EPS) -> Tensor:
    r"""The paper's ``psi``: min-max rescaling to ``[0, 1]``,

    .. math::
        \psi(F) = \frac{F - \min F}{\max F - \min F + \epsilon}

    with the min and max taken per image over (C, H, W) (``scope='image'``), per
    image and channel over (H, W) (``'channel'``), over the whole (N, C, H, W)
    tensor (``'batch'``), or not at all (``None``: ``x`` unchanged). The paper
    does not say over which elements; ``'image'`` is this module's reading.

    Args:
        x (Tensor): (N, C, H, W).

    Returns:
        Tensor: (N, C, H, W) in [0, 1).
    """
    if scope is None:
        return x
    if scope not in MINMAX_SCOPES:
        raise ValueError(f'minmax must be one of {MINMAX_SCOPES}, got {scope!r}.')
    dims = {'image': (1, 2, 3), 'channel': (2, 3), 'batch': (0, 1, 2, 3)}[scope]
    lo = x.amin(dim=dims, keepdim=True)
    hi = x.amax(dim=dims, keepdim=True)
    return (x - lo) / (hi - lo + eps)


def ssim_map(s: Tensor,
             t: Tensor,
             window: Tensor,
             c1: float,
             c2: float,
             exponents: Tuple[float, float, float] = (1.0, 1.0, 1.0),
             padding: str = 'reflect',
             eps: float = SSIM_EPS) -> Tensor:
    r"""SSIM per position and channel (Sec. 3.2), ``l^alpha c^beta s^gamma``.

    With ``exponents == (1, 1, 1)`` the closed form

    .. math::
        SSIM = \frac{(2\mu_S\mu_T + C_1)(2\sigma_{ST} + C_2)}
                    {(\mu_S^2 + \mu_T^2 + C_1)(\sigma_S^2 + \sigma_T^2 + C_2) + \epsilon}

    (kornia's, ``C_3 = C_2 / 2``). Otherwise the three terms of Sec. 3.2 separately,
    with ``sigma_S sigma_T = sqrt(max(var_S, 0) max(var_T, 0) + eps)`` (the ``eps``
    keeps the square root differentiable where a window is flat), ``C_3 = C_2 / 2``
    and an exponent 0 dropping its term.

    Args:
        s, t (Tensor): (N, C, H, W), student and teacher.
        window (Tensor): (k,), :func:`window_1d`.
        c1, c2 (float): ``C_1``, ``C_2``.
        exponents (tuple): ``(alpha, beta, gamma)``.

    Returns:
        Tensor: (N, C, H, W).
    """
    mu_s, mu_t, var_s, var_t, cov = local_moments(s, t, window, padding)
    alpha, beta, gamma = exponents
    if (alpha, beta, gamma) == (1.0, 1.0, 1.0):
        num = (2 * mu_s * mu_t + c1) * (2 * cov + c2)
        den = (mu_s * mu_s + mu_t * mu_t + c1) * (var_s + var_t + c2)
        return num / (den + eps)
    out = torch.ones_like(mu_s)
    if alpha:
        lum = (2 * mu_s * mu_t + c1) / (mu_s * mu_s + mu_t * mu_t + c1)
        out = out * lum.pow(alpha)
    if beta or gamma:
        var_s, var_t = var_s.clamp(min=0), var_t.clamp(min=0)
        sd_prod = (var_s * var_t + eps).sqrt()
        c3 = c2 / 2
        if beta:
            out = out * ((2 * sd_prod + c2) / (var_s + var_t + c2)).pow(beta)
        if gamma:
            out = out * ((cov + c3) / (sd_prod + c3)).pow(gamma)
    return out


def ssim_level_loss(s: Tensor,
                    t: Tensor,
                    window: Tensor,
                    c1: float,
                    c2: float,
                    exponents: Tuple[float, float, float] = (1.0, 1.0, 1.0),
                    padding: str = 'reflect',
                    minmax: Optional[str] = 'image',
                    halve: bool = True) -> Tensor:
    r"""One level of Eq. 1 (no weight):

    .. math::
        L_r = \frac{1}{N C H W} \sum_{n,c,h,w}
              \frac{1 - SSIM(\psi(S), \psi(T))_{n,c,h,w}}{2}

    ``psi`` is :func:`minmax_rescale` (applied to student and teacher separately);
    ``halve=False`` drops the 1/2 (``1 - SSIM``). kornia's ``ssim_loss`` also clamps
    each term to [0, 1]; not here (SSIM lies in [-1, 1] up to rounding, and the
    clamp would only cut gradients at those rounding errors).

    Args:
        s (Tensor): student (N, C, H, W), already adapted / resized.
        t (Tensor): teacher (N, C, H, W); detached here.

    Returns:
        Tensor: scalar, fp32 (float64 for float64 inputs).
    """
    if s.dtype != torch.float64:  # float64 inputs (tests) stay float64
        s, t = s.float(), t.float()
    s = minmax_rescale(s, minmax)
    t = minmax_rescale(t.detach(), minmax)
    dissim = 1.0 - ssim_map(s, t, window, c1, c2, exponents, padding)
    if halve:
        dissim = dissim / 2
    return dissim.mean()


@MODELS.register_module()
class SSIMKDLoss(BaseDistillLoss):
    r"""SSIM feature distillation summed over the recorded levels, times ``loss_weight``
    (Eq. 1 with the SSIM dissimilarity):

    .. math::
        L = w \sum_r \operatorname{mean}_{n,c,h,w}
            \frac{1 - SSIM(\psi(\phi(S_r)), \psi(T_r))}{2}

    Args:
        window_size (int): side k of the window. Defaults to 11 (the paper;
            call ``window_size=11``).
        sigma (float): Gaussian sigma. Defaults to 1.5 (paper; kornia's fixed value).
        window (str): ``'gaussian'`` (paper) or ``'uniform'`` (a k x k box).
        dynamic_range (float): ``L`` in ``C_1 = (K_1 L)^2``, ``C_2 = (K_2 L)^2``.
            Defaults to 1.0: the features are min-max rescaled to [0, 1] first
            (kornia's ``max_val=1``). With ``minmax=None`` set it to the range of
            the raw features.
        k1, k2 (float): ``K_1``, ``K_2``. Defaults to 0.01, 0.03.
        exponents (tuple): ``(alpha, beta, gamma)`` of luminance, contrast and
            structure, non-negative integers. Defaults to (1, 1, 1) (the paper's
            main results; its ablation uses e.g. (0, 0, 1), structure only, and
            (0, 1, 1)).
        minmax (str | None): scope of the min-max rescaling ``psi``: ``'image'``
            (default; per image over C, H, W), ``'channel'`` (per image and
            channel), ``'batch'`` (whole tensor) or None (off). The paper only
            says "min-max rescaling"; the scope is our reading.
        padding (str): border handling of the window: ``'reflect'`` (default;
            kornia's ``filter2d``, ``'replicate'`` on levels with a side <= k//2),
            ``'replicate'`` or ``'zeros'``.
        halve (bool): use ``(1 - SSIM) / 2`` (default; the paper and kornia) or
            ``1 - SSIM``.
        **kwargs: ``loss_weight`` (the paper's lambda), ``inputs`` (default
            ``s_feats='student.fpn'``, ``t_feats='teacher.fpn'``), ``adapter``
            (``phi``; default ``'auto'``: a 1x1 conv per level only where the
            widths differ; ``dict(kernel_size=1)`` always, as the paper's
            Faster R-CNN setting), ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 window_size: int = 11,
                 sigma: float = 1.5,
                 window: str = 'gaussian',
                 dynamic_range: float = 1.0,
                 k1: float = SSIM_K1,
                 k2: float = SSIM_K2,
                 exponents: Sequence[float] = (1.0, 1.0, 1.0),
                 minmax: Optional[str] = 'image',
                 padding: str = 'reflect',
                 halve: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if padding not in PADDINGS:
            raise ValueError(f'padding must be one of {PADDINGS}, got {padding!r}.')
        if minmax not in MINMAX_SCOPES:
            raise ValueError(f'minmax must be one of {MINMAX_SCOPES}, got {minmax!r}.')
        if len(exponents) != 3 or any(e < 0 or e != int(e) for e in exponents):
            raise ValueError(f'exponents must be three non-negative integers (alpha, beta, '
                             f'gamma; the structure term can be negative, so a fractional '
                             f'power is undefined), got {tuple(exponents)!r}.')
        if dynamic_range <= 0 or sigma <= 0:
            raise ValueError(f'dynamic_range and sigma must be positive, got '
                             f'{dynamic_range} and {sigma}.')
        # float64: cast to the features' dtype where used (exact for float64 inputs)
        self.register_buffer(
            'window',
            window_1d(int(window_size), float(sigma), window, dtype=torch.float64),
            persistent=False)
        self.c1 = (k1 * dynamic_range)**2
        self.c2 = (k2 * dynamic_range)**2
        self.exponents = tuple(float(e) for e in exponents)
        self.minmax = minmax
        self.padding = padding
        self.halve = bool(halve)

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        losses: List[Tensor] = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape != t.shape:
                raise ValueError(
                    f'SSIMKDLoss: level {lvl}: adapted student {tuple(s.shape)} vs teacher '
                    f'{tuple(t.shape)}; let the Distiller call setup (it builds the '
                    f'adapters) or set adapter / resize_student.')
            losses.append(
                ssim_level_loss(s, t, self.window, self.c1, self.c2, self.exponents, self.padding,
                                self.minmax, self.halve))
        return self.loss_weight * torch.stack(losses).sum()


__all__ = [
    'SSIMKDLoss', 'window_1d', 'local_filter', 'local_moments', 'minmax_rescale', 'ssim_map',
    'ssim_level_loss'
]
