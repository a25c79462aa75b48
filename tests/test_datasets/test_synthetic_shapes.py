"""Shape geometry and rasterisation of the synthetic dataset (synthetic/shapes.py)."""
import math

import numpy as np
import pytest

from mmkd_det.datasets.synthetic.shapes import (DISTRACTOR_TYPES, SYNTHETIC_CLASSES, class_geometry,
                                                distractor_geometry, rasterize)

SQUARE = SYNTHETIC_CLASSES.index('square')


def _square():
    return class_geometry(SQUARE, np.random.default_rng(0))


def test_filled_square_inside_image():
    # unit square scaled to 10 px at (20, 20): corners at 15 and 25; OpenCV fills the
    # pixels whose centres lie on or inside the polygon -> 11 x 11 pixels. The region is
    # the corner box padded by stroke + 1 = 1 px: [14, 26] -> ends 14 and ceil(26) + 1.
    mask, region, inside = rasterize(_square(), 10., 10., 0., 20., 20., 0, 64)
    assert region == (14, 27, 14, 27)
    assert mask.shape == (13, 13) and mask.dtype == bool
    assert inside == 1.
    expected = np.zeros((13, 13), bool)
    expected[1:12, 1:12] = True
    assert np.array_equal(mask, expected)


def test_square_cut_by_the_border():
    # centred on the corner (0, 0): padded box [-6, 6]², of which [0, 6]² is inside
    # -> inside fraction 36 / 144; filled pixels 0..5 in both directions
    mask, region, inside = rasterize(_square(), 10., 10., 0., 0., 0., 0, 64)
    assert region == (0, 7, 0, 7)
    assert inside == pytest.approx(36. / 144.)
    assert mask.sum() == 36 and mask[:6, :6].all()


def test_shape_outside_the_image_is_none():
    assert rasterize(_square(), 10., 10., 0., -10., -10., 0, 64) is None


def test_rotation_by_a_quarter_turn_keeps_a_square():
    straight = rasterize(_square(), 10., 10., 0., 20., 20., 0, 64)
    turned = rasterize(_square(), 10., 10., math.pi / 2, 20., 20., 0, 64)
    assert turned[1] == straight[1] and np.array_equal(turned[0], straight[0])


def test_hollow_square_is_a_one_pixel_outline():
    geo = distractor_geometry(DISTRACTOR_TYPES.index('hollow_square'), np.random.default_rng(0))
    assert geo.fill == [] and len(geo.stroke) == 1
    mask, region, _ = rasterize(geo, 10., 10., 0., 20., 20., 1, 64)
    assert region == (13, 28, 13, 28)  # padded by stroke + 1 = 2 px
    outline = np.zeros((15, 15), bool)
    outline[2:13, 2:13] = True
    outline[3:12, 3:12] = False  # 11 x 11 border: 4 * 10 = 40 pixels
    assert np.array_equal(mask, outline) and mask.sum() == 40


def test_ring_has_a_hole_and_disc_has_not():
    rng = np.random.default_rng(0)
    disc = class_geometry(SYNTHETIC_CLASSES.index('disc'), rng)
    ring = class_geometry(SYNTHETIC_CLASSES.index('ring'), rng)
    d_mask, d_region, _ = rasterize(disc, 30., 30., 0., 40., 40., 0, 80)
    r_mask, r_region, _ = rasterize(ring, 30., 30., 0., 40., 40., 0, 80)
    assert d_region == r_region
    cy, cx = 40 - d_region[0], 40 - d_region[2]
    assert d_mask[cy, cx] and not r_mask[cy, cx]
    # the ring is the disc minus the hole: no pixel of the ring lies outside the disc
    assert not (r_mask & ~d_mask).any()
    # hole radius 0.45-0.65 of the outer one: the ring keeps 1 - 0.65² .. 1 - 0.45²
    ratio = r_mask.sum() / d_mask.sum()
    assert 1 - .65**2 - .05 < ratio < 1 - .45**2 + .05


def test_geometry_jitter_comes_from_the_generator():
    label = SYNTHETIC_CLASSES.index('triangle')
    a = class_geometry(label, np.random.default_rng(3)).fill[0]
    b = class_geometry(label, np.random.default_rng(3)).fill[0]
    c = class_geometry(label, np.random.default_rng(4)).fill[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert -.25 <= a[0, 0] <= .25 and a[0, 1] == -.5  # skewed apex on the top edge


def test_partial_star_keeps_two_or_three_arms():
    kind = DISTRACTOR_TYPES.index('partial_star')
    for seed in range(20):
        pts = distractor_geometry(kind, np.random.default_rng(seed)).fill[0]
        radii = np.hypot(pts[:, 0], pts[:, 1])
        tips = np.isclose(radii[0::2], .5)  # even vertices are arm tips or flattened
        assert 2 <= tips.sum() <= 3
        assert np.allclose(radii[1::2], radii[1])  # inner vertices on one circle


def test_every_class_and_distractor_rasterises():
    rng = np.random.default_rng(0)
    for label in range(len(SYNTHETIC_CLASSES)):
        geo = class_geometry(label, rng)
        assert rasterize(geo, 20., 20., .3, 30., 30., 1, 64)[0].any(), SYNTHETIC_CLASSES[label]
    for kind in range(len(DISTRACTOR_TYPES)):
        geo = distractor_geometry(kind, rng)
        assert rasterize(geo, 20., 20., .3, 30., 30., 1, 64)[0].any(), DISTRACTOR_TYPES[kind]
