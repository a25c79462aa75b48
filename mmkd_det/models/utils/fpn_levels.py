r"""FPN levels: strides, checks, the RoI level rule for GT boxes, per-level views.

Shape shorthand: ``B`` images, ``G`` GT boxes per image (padded),
``Q = sum_l H_l W_l`` locations of all levels, level by level.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def level_strides(strides: Sequence) -> List[int]:
    """Per-level strides as ints; mmdet's ``(sx, sy)`` pairs give ``sx``."""
    return [int(s[0]) if isinstance(s, (tuple, list)) else int(s) for s in strides]


def resolve_strides(strides: Optional[Sequence], num_levels: int, name: str) -> List[int]:
    """Per-level strides as ints, checked against the number of recorded levels.

    Args:
        strides (Sequence | None): one stride (or ``(sx, sy)``) per level.
        num_levels (int): recorded feature levels.
        name (str): the loss, for the error message.

    Raises:
        ValueError: when ``strides`` is None or has another length; the
            message names the fix.
    """
    if strides is None:
        raise ValueError(f'{name} needs the stride of every recorded level: the Distiller '
                         f'passes the strides of the student dense head (bbox_head or '
                         f'rpn_head); the student has none, so set strides=[...] on the loss.')
    strides = level_strides(strides)
    if len(strides) != num_levels:
        raise ValueError(f'{name}: {num_levels} recorded feature levels but {len(strides)} '
                         f'strides {strides}; record the neck levels the dense head reads '
                         f'(or set strides=[...] on the loss to the recorded levels).')
    return strides


def check_level_strides(feats: Sequence[Tensor], strides: Sequence[int],
                        batch_img_metas: Optional[Sequence[dict]], name: str) -> None:
    """Each level must have ``batch_input_shape / stride`` cells (within one).

    Catches features of the wrong levels (e.g. backbone outputs, or FPN levels
    shifted against the head's strides), which would misplace every box. Does
    nothing without ``batch_input_shape`` in the metas.

    Raises:
        ValueError: naming the level, its size and the size its stride implies.
    """
    if not batch_img_metas or 'batch_input_shape' not in batch_img_metas[0]:
        return
    in_h, in_w = batch_img_metas[0]['batch_input_shape'][:2]
    for lvl, (f, s) in enumerate(zip(feats, strides)):
        h, w = f.shape[-2:]
        if abs(h - in_h / s) >= 1 or abs(w - in_w / s) >= 1:
            raise ValueError(
                f'{name}: level {lvl} is {h}x{w} but a {in_h}x{in_w} input at stride {s} '
                f'gives {in_h / s:g}x{in_w / s:g}; the recorded features are not the levels '
                f'of strides {list(strides)}.')


def map_gt_levels(boxes: Tensor,
                  num_levels: int,
                  finest_scale: float = 56.0,
                  level_offset: int = 0,
                  legacy_offset: bool = False) -> Tensor:
    r"""FPN level of every box by the RoI rule of FPN (mmdet's RoI extractor rule).

    .. math::
        lvl = \mathrm{clamp}\big(\lfloor \log_2(\sqrt{wh} / s_0 + 10^{-6}) \rfloor
              + offset,\ 0,\ L - 1\big)

    ``s_0 = finest_scale`` (56, FPN's RoI rule). Level 0 is the first level
    passed: P2 for Faster R-CNN (P2-P6), P3 for RetinaNet (P3-P7).
    ``w, h = x2 - x1, y2 - y1`` (mmdet >= 2); ``legacy_offset=True`` uses
    ``w + 1, h + 1`` (the pre-mmdet-2 pixel convention, as in DeFeat's
    ``_map_roi_levels``). The two differ only for boxes whose size sits within
    about one pixel of a level boundary (``sqrt(wh) = s_0 2^k``).

    Args:
        boxes (Tensor): (..., 4) xyxy boxes.
        num_levels (int): L.
        finest_scale (float): s_0.
        level_offset (int): added to the level before clamping.
        legacy_offset (bool): add 1 to the width and the height.

    Returns:
        Tensor: long level indices, shape ``boxes.shape[:-1]``.
    """
    extra = 1.0 if legacy_offset else 0.0
    w = (boxes[..., 2] - boxes[..., 0] + extra).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1] + extra).clamp(min=0)
    scale = (w * h).sqrt()
    lvl = torch.floor(torch.log2(scale / finest_scale + 1e-6)).long() + int(level_offset)
    return lvl.clamp(min=0, max=num_levels - 1)


def split_levels(t: Tensor, shapes: Sequence[Tuple[int, int]]) -> List[Tensor]:
    """(B, Q) per-location values -> per-level (B, H, W) maps."""
    chunks = t.split([h * w for h, w in shapes], dim=1)
    return [c.reshape(t.shape[0], h, w) for c, (h, w) in zip(chunks, shapes)]
