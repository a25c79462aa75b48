"""FPN level helpers (mmkd_det.models.utils.fpn_levels), values worked out by hand."""
import pytest
import torch

from mmkd_det.models.utils import (check_level_strides, level_strides, map_gt_levels,
                                   resolve_strides, split_levels)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_map_gt_levels_roi_rule():
    boxes = t([0, 0, 50, 50],       # sqrt(wh) 50: log2(0.89) < 0 -> 0
              [0, 0, 112, 112],     # log2(2) = 1 exactly -> 1
              [0, 0, 111, 111],     # log2(1.98) -> 0
              [0, 0, 224, 224],     # 2
              [0, 0, 100, 490],     # sqrt 221.4: log2(3.95) -> 1
              [0, 0, 2000, 2000],   # log2(35.7) = 5.2 -> clamped to L - 1 = 4
              [5, 5, 5, 40])        # zero width -> 0
    assert map_gt_levels(boxes, 5).tolist() == [0, 1, 0, 2, 1, 4, 0]
    # RetinaNet P3-P7 at Faster R-CNN's strides: one level down, still clamped at 0
    assert map_gt_levels(boxes, 5, level_offset=-1).tolist() == [0, 0, 0, 1, 0, 4, 0]
    # finest_scale 28: 112 -> log2(4) = 2, 50 -> log2(1.79) = 0
    assert map_gt_levels(boxes, 5, finest_scale=28).tolist() == [0, 2, 1, 3, 2, 4, 0]
    assert map_gt_levels(boxes.view(1, 7, 4), 3).shape == (1, 7)


def test_map_gt_levels_legacy_offset():
    # sqrt((w + 1)(h + 1)) (DeFeat's _map_roi_levels) against sqrt(w h):
    boxes = t([0, 0, 111, 111],     # 111 -> 0; legacy 112: log2(2) = 1 -> 1
              [0, 0, 110, 111],     # legacy sqrt(111 x 112) = 111.5 -> still 0
              [0, 0, 223, 223],     # 223 -> 1; legacy 224 -> 2
              [0, 0, 50, 50],       # 0 both
              [5, 5, 5, 40])        # zero width: 0; legacy sqrt(1 x 36) = 6 -> 0
    assert map_gt_levels(boxes, 5).tolist() == [0, 0, 1, 0, 0]
    assert map_gt_levels(boxes, 5, legacy_offset=True).tolist() == [1, 0, 2, 0, 0]
    # combined with level_offset, then clamped
    assert map_gt_levels(boxes, 5, level_offset=-1, legacy_offset=True).tolist() == \
        [0, 0, 1, 0, 0]


def test_level_strides_and_resolve():
    assert level_strides([(8, 8), (16, 16), 32, 64.0]) == [8, 16, 32, 64]
    assert resolve_strides([(8, 8), 16], 2, 'X') == [8, 16]
    with pytest.raises(ValueError, match='X needs the stride of every recorded level'):
        resolve_strides(None, 2, 'X')
    with pytest.raises(ValueError, match='X: 3 recorded feature levels but 2 strides'):
        resolve_strides([8, 16], 3, 'X')


def test_check_level_strides():
    feats = [torch.zeros(1, 2, 8, 10), torch.zeros(1, 2, 4, 5)]
    metas = [dict(batch_input_shape=(64, 80))]
    check_level_strides(feats, [8, 16], metas, 'X')            # 64/8 x 80/8, 64/16 x 80/16
    check_level_strides(feats, [8, 16], None, 'X')             # nothing to check
    check_level_strides(feats, [8, 16], [dict()], 'X')
    # an odd input size rounds either way: 4x5 at stride 16 of 70x90 (4.375 x 5.625)
    check_level_strides(feats[1:], [16], [dict(batch_input_shape=(70, 90))], 'X')
    with pytest.raises(ValueError, match='X: level 1 is 4x5 but a 64x80 input at stride 8'):
        check_level_strides(feats, [8, 8], metas, 'X')


def test_split_levels():
    # B = 2, levels 2x3 and 1x2: Q = 8, row-major within each level
    flat = torch.arange(16.0).view(2, 8)
    lvl0, lvl1 = split_levels(flat, [(2, 3), (1, 2)])
    torch.testing.assert_close(lvl0[1], t([8, 9, 10], [11, 12, 13]), rtol=0, atol=0)
    torch.testing.assert_close(lvl1, t([[6, 7]], [[14, 15]]), rtol=0, atol=0)
