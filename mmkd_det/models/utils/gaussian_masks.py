r"""Gaussian masks of GT boxes on strided feature maps (TADF's feature mask).

For a box with centre :math:`(c_x, c_y)`, width :math:`w` and height :math:`h` (input
pixels) and a level of stride :math:`s`, the cell :math:`(i, j)` with centre
:math:`(x, y) = ((j + \tfrac12) s, (i + \tfrac12) s)` gets

.. math::
    M_{ij} = \exp\Big( -\frac{(x - c_x)^2}{2 \sigma_x^2}
                       -\frac{(y - c_y)^2}{2 \sigma_y^2} \Big),
    \qquad \sigma_x = \rho w, \ \sigma_y = \rho h,

(``rho`` = ``sigma_ratio``), and, with ``clip_to_box``, 0 outside the box (a cell is
inside when its centre is, or when it holds the box centre, so a box thinner than a
cell keeps its centre cell). Overlapping boxes take the maximum.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def gaussian_box_masks(boxes: Tensor,
                       valid: Tensor,
                       featmap_sizes: Sequence[Tuple[int, int]],
                       strides: Sequence[int],
                       sigma_ratio: float = 0.5,
                       clip_to_box: bool = True,
                       levels: Optional[Tensor] = None) -> List[Tensor]:
    """Gaussian GT masks, one (B, H, W) map in [0, 1] per level (module docstring).

    The Gaussian is separable: per box a row factor (B, G, H) and a column factor
    (B, G, W), combined by an outer product and a maximum over the boxes (no loop
    over boxes).

    Args:
        boxes (Tensor): (B, G, 4) xyxy in input pixels.
        valid (Tensor): (B, G) bool; padded boxes mark nothing.
        featmap_sizes: (H, W) per level.
        strides: stride per level.
        sigma_ratio (float): rho, > 0.
        clip_to_box (bool): 0 outside the box. Defaults to True.
        levels (Tensor, optional): (B, G) level of every box; a box then marks its
            level only. None: every level.

    Returns:
        list[Tensor]: per level (B, H, W).
    """
    if not sigma_ratio > 0:
        raise ValueError(f'gaussian_box_masks: sigma_ratio must be > 0, got {sigma_ratio}.')
    x1, y1, x2, y2 = boxes.unbind(-1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sx = (sigma_ratio * (x2 - x1)).clamp(min=1e-6)
    sy = (sigma_ratio * (y2 - y1)).clamp(min=1e-6)
    masks = []
    for lvl, ((h, w), stride) in enumerate(zip(featmap_sizes, strides)):
        ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * stride
        xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * stride
        rows = torch.exp(-(ys - cy[..., None])**2 / (2 * sy[..., None]**2))  # (B, G, H)
        cols = torch.exp(-(xs - cx[..., None])**2 / (2 * sx[..., None]**2))  # (B, G, W)
        if clip_to_box:
            row_in = ((ys >= y1[..., None]) & (ys <= y2[..., None])) | (
                torch.arange(h, device=boxes.device) == (cy / stride).floor()[..., None])
            col_in = ((xs >= x1[..., None]) & (xs <= x2[..., None])) | (
                torch.arange(w, device=boxes.device) == (cx / stride).floor()[..., None])
            rows, cols = rows * row_in, cols * col_in
        keep = valid if levels is None else valid & (levels == lvl)
        rows = rows * keep[..., None]
        if boxes.shape[1] == 0:
            masks.append(boxes.new_zeros(boxes.shape[0], h, w))
            continue
        masks.append((rows[..., :, None] * cols[..., None, :]).amax(dim=1))
    return masks
