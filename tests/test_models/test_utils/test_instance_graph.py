"""Instance-graph helpers: cosine matrix on hand-made vectors, the same-image pair mask and
per-image sums against explicit loops."""
import math

import pytest
import torch

from mmkd_det.models.utils import cosine_similarity_matrix, group_sum, same_group_pairs


def test_cosine_matrix_by_hand():
    # (1, 0), (1, 1), (0, 2), (0, 0): cos 45 deg = 1/sqrt(2), 90 deg = 0; zero row -> 0
    f = torch.tensor([[1., 0.], [1., 1.], [0., 2.], [0., 0.]])
    a = cosine_similarity_matrix(f)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1., r, 0., 0.], [r, 1., r, 0.], [0., r, 1., 0.], [0., 0., 0., 0.]])
    torch.testing.assert_close(a, expected)
    with pytest.raises(ValueError, match='flatten'):
        cosine_similarity_matrix(torch.zeros(2, 3, 4))


def test_cosine_matrix_against_pairwise_loop():
    torch.manual_seed(0)
    f = torch.randn(6, 5, dtype=torch.float64)
    a = cosine_similarity_matrix(f)
    for j in range(6):
        for k in range(6):
            ref = torch.nn.functional.cosine_similarity(f[j], f[k], dim=0)
            assert a[j, k].item() == pytest.approx(ref.item(), abs=1e-12)


def test_same_group_pairs_and_group_sum():
    groups = torch.tensor([0, 0, 1, 1, 1])
    valid = torch.tensor([True, False, True, True, False])
    mask = same_group_pairs(groups, valid)
    for j in range(5):
        for k in range(5):
            ref = groups[j] == groups[k] and bool(valid[j]) and bool(valid[k])
            assert bool(mask[j, k]) == ref
    assert same_group_pairs(groups).sum().item() == 2 * 2 + 3 * 3
    x = torch.tensor([1., 2., 3., 4., 5.], requires_grad=True)
    s = group_sum(x, groups, 3)
    assert s.tolist() == [3., 12., 0.]  # group 2 is empty
    s.sum().backward()
    assert x.grad.tolist() == [1.] * 5
    with pytest.raises(ValueError, match='both be'):
        group_sum(torch.zeros(3), torch.zeros(4, dtype=torch.long), 2)
