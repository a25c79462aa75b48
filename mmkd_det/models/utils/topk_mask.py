"""Top-k selection masks over the FPN locations of a batch.

Shape shorthand: ``B`` images, ``Q = sum_l H_l W_l`` locations of all levels,
level by level (row-major within a level).
"""
import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

#: where a top-k ranks: each image over all its levels, each image and level, the batch.
TOPK_SCOPES = ('image', 'level', 'batch')


def topk_count(amount: Union[int, float], n: int) -> int:
    """How many of ``n`` entries ``amount`` selects.

    A float in (0, 1] is a fraction, rounded up (``ceil(amount x n)``, with a
    1e-9 tolerance so that ``1/6`` of 6 is 1, not 2); an int is a count. Never
    more than ``n``.
    """
    if isinstance(amount, float):
        return min(n, math.ceil(amount * n - 1e-9))
    return min(n, int(amount))


def topk_mask(rank: Tensor,
              amount: Union[int, float],
              scope: str,
              level_sizes: Sequence[int],
              valid: Optional[Tensor] = None) -> Tensor:
    """Boolean (B, Q) mask of the top ``amount`` entries of ``rank`` (B, Q).

    Args:
        rank (Tensor): (B, Q) scores, higher first.
        amount (int | float): a count or a fraction, see :func:`topk_count`.
        scope (str): ``'image'`` (top-k over all levels of each image),
            ``'level'`` (each image and level separately) or ``'batch'`` (over
            the whole batch at once).
        level_sizes (Sequence[int]): locations per level (``H_l W_l``).
        valid (Tensor, optional): (B, Q) bool; entries where it is False are
            never selected, even when fewer than ``amount`` remain.

    Returns:
        Tensor: (B, Q) bool.
    """
    if scope not in TOPK_SCOPES:
        raise ValueError(f'topk scope={scope!r}; choose one of {TOPK_SCOPES}.')
    if valid is not None:
        rank = rank.masked_fill(~valid, float('-inf'))

    def top(x: Tensor) -> Tensor:  # rows independent
        k = topk_count(amount, x.shape[1])
        mask = torch.zeros_like(x, dtype=torch.bool)
        if k > 0:
            mask.scatter_(1, x.topk(k, dim=1).indices, True)
        return mask & torch.isfinite(x)

    if scope == 'image':
        return top(rank)
    if scope == 'batch':
        return top(rank.reshape(1, -1)).view_as(rank)
    return torch.cat([top(x) for x in rank.split(list(level_sizes), dim=1)], dim=1)
