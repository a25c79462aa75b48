r"""Per-image relation graphs over instance features, computed for a whole batch at once.

Relation-based detection distillation (DSIG, DRKD) builds, for every image, a graph
whose nodes are instance features (RoI-pooled features of proposals or ground-truth
boxes) and whose edges are pairwise relations, and compares teacher and student graphs
image by image. The images hold different numbers of nodes; instead of a Python loop
with boolean indexing per image (one host synchronisation each), the helpers here work
on the ``(N, N)`` relation matrix of all ``N`` nodes of the batch and a mask of the
pairs that lie in the same image (:func:`same_group_pairs`), and reduce per image with
:func:`group_sum`.

Shape shorthand: ``N`` nodes of the batch, ``D`` feature length, ``B`` images (groups).
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor


def cosine_similarity_matrix(feats: Tensor, eps: float = 1e-12) -> Tensor:
    r"""Pairwise cosine similarities of the rows of ``feats``.

    .. math::
        A_{jk} = \frac{f_j^\top f_k}{\max(\|f_j\|_2, \epsilon)\,\max(\|f_k\|_2, \epsilon)}

    (``F.normalize`` semantics: an all-zero row has similarity 0 to everything).

    Args:
        feats (Tensor): (N, D) node features (flatten RoI features first).
        eps (float): lower bound of the norms.

    Returns:
        Tensor: (N, N), symmetric, ones on the diagonal for non-zero rows.
    """
    if feats.dim() != 2:
        raise ValueError(f'cosine_similarity_matrix expects (N, D) node features, got shape '
                         f'{tuple(feats.shape)}; flatten RoI features with .flatten(1).')
    unit = F.normalize(feats, dim=1, eps=eps)
    return unit @ unit.t()


def same_group_pairs(groups: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    r"""Mask of the node pairs that belong to the same group (image), both valid.

    .. math::
        M_{jk} = [g_j = g_k] \, v_j \, v_k

    Args:
        groups (Tensor): (N,) integer group (image) index of each node.
        valid (Tensor, optional): (N,) bool, the nodes that take part (all if None).

    Returns:
        Tensor: (N, N) bool.
    """
    mask = groups[:, None] == groups[None, :]
    if valid is not None:
        mask = mask & valid[:, None] & valid[None, :]
    return mask


def group_sum(values: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    r"""Sum of ``values`` per group: :math:`s_b = \sum_{j: g_j = b} x_j`.

    Args:
        values (Tensor): (N,) values (masked-out nodes should hold 0).
        groups (Tensor): (N,) integer group index in ``[0, num_groups)``.
        num_groups (int): B.

    Returns:
        Tensor: (B,) sums, 0 for groups without nodes; differentiable in ``values``.
    """
    if values.shape != groups.shape or values.dim() != 1:
        raise ValueError(f'group_sum: values {tuple(values.shape)} and groups '
                         f'{tuple(groups.shape)} must both be (N,).')
    out = values.new_zeros(num_groups)
    return out.index_add(0, groups.long(), values)
