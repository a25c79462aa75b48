"""Occlusion control and visible boxes of the synthetic renderer (synthetic/render.py)."""
import numpy as np
from pycocotools import mask as mask_utils

from mmkd_det.datasets.synthetic.render import (SyntheticObject, _hidden_pixels, _Placed,
                                                _set_visible_boxes)


def _scene(annotated=True):
    """A 20 x 20 image whose only object covers rows and columns 0..9 (100 pixels)."""
    owner = np.full((20, 20), -1, np.int16)
    owner[:10, :10] = 0
    placed = [_Placed(SyntheticObject(0, annotated), (0, 10, 0, 10), 100, 100)]
    return owner, placed


def test_hidden_pixels_counts_what_a_new_mask_covers():
    owner, placed = _scene()
    # columns 0..4 of the object: 50 pixels hidden, 50 (>= 30) stay, visible box 5 wide
    new = np.ones((10, 5), bool)
    assert _hidden_pixels(owner, placed, new, (0, 10, 0, 5), .7, 4) == [(0, 50)]
    # a mask that reaches outside the object counts only the object's pixels
    new = np.ones((12, 5), bool)
    assert _hidden_pixels(owner, placed, new, (5, 17, 0, 5), .7, 4) == [(0, 25)]
    # nothing below: nothing hidden
    assert _hidden_pixels(owner, placed, np.ones((5, 5), bool), (12, 17, 12, 17), .7, 4) == []


def test_hidden_pixels_refuses_too_much_occlusion():
    owner, placed = _scene()
    new = np.ones((10, 8), bool)  # hides 80 of 100 pixels: 20 left < (1 - 0.7) * 100
    assert _hidden_pixels(owner, placed, new, (0, 10, 0, 8), .7, 4) is None
    # allowed by 90 % occlusion, but the visible part (columns 8, 9) is 2 < 4 px wide
    assert _hidden_pixels(owner, placed, new, (0, 10, 0, 8), .9, 4) is None
    assert _hidden_pixels(owner, placed, new, (0, 10, 0, 8), .9, 2) == [(0, 80)]
    # the occlusion already suffered counts: 50 of 100 visible, hiding 25 more leaves 25
    placed[0].visible = 50
    new = np.ones((5, 5), bool)
    assert _hidden_pixels(owner, placed, new, (0, 5, 0, 5), .7, 4) is None


def test_distractors_may_be_hidden_entirely():
    owner, placed = _scene(annotated=False)
    new = np.ones((10, 10), bool)
    assert _hidden_pixels(owner, placed, new, (0, 10, 0, 10), .7, 4) == [(0, 100)]


def test_visible_boxes_from_the_topmost_pixels():
    owner = np.full((16, 16), -1, np.int16)
    owner[2:6, 3:9] = 0  # object 0: rows 2..5, columns 3..8
    owner[4:6, 6:9] = 1  # object 1 on top of part of object 0
    owner[10:16, 12:14] = 2  # object 2 touches the bottom border
    placed = [
        _Placed(SyntheticObject(0, True), (0, 8, 0, 10), 24, 18),
        _Placed(SyntheticObject(3, False), (4, 6, 6, 9), 6, 6),
        _Placed(SyntheticObject(1, True), (10, 16, 12, 14), 12, 12),
        _Placed(SyntheticObject(2, True), (0, 4, 0, 4), 10, 0),  # fully hidden
    ]
    _set_visible_boxes(placed, owner)
    objs = [p.obj for p in placed]
    assert objs[0].bbox == (3, 2, 6, 4) and not objs[0].truncated
    assert objs[0].visible_fraction == 18 / 24
    assert objs[1].bbox == (6, 4, 3, 2)
    assert objs[2].bbox == (12, 10, 2, 6) and objs[2].truncated
    assert objs[3].bbox is None and objs[3].segmentation is None
    assert objs[3].visible_fraction == 0.
    for idx in range(3):
        rle = dict(objs[idx].segmentation)
        assert rle['size'] == [16, 16]
        rle['counts'] = rle['counts'].encode('ascii')
        assert np.array_equal(mask_utils.decode(rle).astype(bool), owner == idx)
