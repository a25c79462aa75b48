"""Top-k masks over FPN locations (mmkd_det.models.utils.topk_mask).

Expected masks are written literally, worked out by hand in the comments.
"""
import pytest
import torch

from mmkd_det.models.utils import TOPK_SCOPES, topk_count, topk_mask


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def b(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def assert_equal(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- topk_mask
# two images, 6 locations, levels of 4 and 2 locations
RANK = t([0.1, 0.9, 0.3, 0.5, 0.8, 0.2],
         [0.7, 0.0, 0.6, 0.4, 0.05, 0.95])
SIZES = [4, 2]


def test_topk_mask_image_scope_count():
    # row 0: 0.9 (1), 0.8 (4); row 1: 0.95 (5), 0.7 (0)
    assert_equal(topk_mask(RANK, 2, 'image', SIZES),
                 b([0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1]))


def test_topk_mask_level_scope():
    # k=2 per level; level 1 has only 2 locations -> both taken
    # row 0 level 0: 0.9 (1), 0.5 (3); row 1 level 0: 0.7 (0), 0.6 (2)
    assert_equal(topk_mask(RANK, 2, 'level', SIZES),
                 b([0, 1, 0, 1, 1, 1], [1, 0, 1, 0, 1, 1]))
    # fraction per level: ceil(0.25 * 4) = 1 on level 0, ceil(0.25 * 2) = 1 on level 1
    assert_equal(topk_mask(RANK, 0.25, 'level', SIZES),
                 b([0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1]))


def test_topk_mask_batch_scope():
    # 3 over the 12 entries: 0.95 (r1, 5), 0.9 (r0, 1), 0.8 (r0, 4)
    expected = b([0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1])
    assert_equal(topk_mask(RANK, 3, 'batch', SIZES), expected)
    # 0.25 of 12 = 3
    assert_equal(topk_mask(RANK, 0.25, 'batch', SIZES), expected)


def test_topk_mask_fraction_vs_count_and_ceil():
    top2 = b([0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1])
    # 0.25 * 6 = 1.5 -> ceil 2; 0.2 * 6 = 1.2 -> 2; 0.01 * 6 -> 1
    assert_equal(topk_mask(RANK, 0.25, 'image', SIZES), top2)
    assert_equal(topk_mask(RANK, 0.2, 'image', SIZES), top2)
    assert_equal(topk_mask(RANK, 0.01, 'image', SIZES),
                 b([0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]))
    # 1/6 * 6 is 1 up to rounding: exactly one, not two
    assert_equal(topk_mask(RANK, 1 / 6, 'image', SIZES),
                 b([0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]))
    # 0.5 * 6 = 3 exactly
    assert_equal(topk_mask(RANK, 0.5, 'image', SIZES),
                 b([0, 1, 0, 1, 1, 0], [1, 0, 1, 0, 0, 1]))
    # int 1 is one location, float 1.0 is all of them; a count above n is n
    assert int(topk_mask(RANK, 1, 'image', SIZES).sum()) == 2
    assert bool(topk_mask(RANK, 1.0, 'image', SIZES).all())
    assert bool(topk_mask(RANK, 100, 'image', SIZES).all())


def test_topk_mask_valid_excludes_entries():
    valid = b([1, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1])
    # row 0 without 0.9: 0.8 (4), 0.5 (3); row 1: only (5) is valid -> one entry
    assert_equal(topk_mask(RANK, 2, 'image', SIZES, valid),
                 b([0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]))
    # nothing valid -> nothing selected
    none = torch.zeros_like(valid)
    assert not bool(topk_mask(RANK, 2, 'batch', SIZES, none).any())


def test_topk_count_fraction_and_count():
    # fraction: ceil(f x n) (1e-9 tolerance); count: as given; never more than n
    assert topk_count(0.25, 6) == 2          # 1.5 -> 2
    assert topk_count(0.5, 6) == 3           # exactly 3
    assert topk_count(1 / 6, 6) == 1         # 1 up to rounding -> 1, not 2
    assert topk_count(0.001, 6) == 1         # any positive fraction selects one
    assert topk_count(1.0, 6) == 6
    assert topk_count(4, 6) == 4
    assert topk_count(10, 6) == 6


def test_topk_mask_rejects_unknown_scope():
    assert TOPK_SCOPES == ('image', 'level', 'batch')
    with pytest.raises(ValueError, match='scope'):
        topk_mask(RANK, 2, 'levels', SIZES)
