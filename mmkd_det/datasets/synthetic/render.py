"""Image composition of the synthetic dataset: background, painting, occlusion control.

:func:`render_synthetic_image` draws one image from a random generator: a textured
background, annotated shapes and unannotated distractors placed so that no annotated
object loses more than ``max_occlusion`` of its pixels, then blur and pixel noise. Boxes
and RLE masks are taken from the pixels each object keeps on top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .shapes import (DISTRACTOR_TYPES, SYNTHETIC_CLASSES, class_geometry, distractor_geometry,
                     rasterize)

__all__ = ['SyntheticObject', 'render_synthetic_image']

Region = Tuple[int, int, int, int]  # y0, y1, x0, x1 (exclusive ends)


@dataclass
class SyntheticObject:
    """An object placed in a synthetic image.

    Attributes:
        label (int): Class index into :data:`SYNTHETIC_CLASSES` for annotated
            objects, into :data:`DISTRACTOR_TYPES` for distractors.
        annotated (bool): False for distractors.
        bbox (tuple[int, int, int, int] | None): Tight box ``(x, y, w, h)`` of the
            visible pixels (pixel ``x`` covers ``[x, x + 1)``); None when nothing
            is visible.
        visible_fraction (float): Visible pixels / in-image pixels of the shape.
        truncated (bool): Whether the visible box touches the image border.
        segmentation (dict | None): COCO RLE (``size``, ``counts``) of the
            visible pixels over the whole image; None when nothing is visible.
    """
    label: int
    annotated: bool
    bbox: Optional[Tuple[int, int, int, int]] = None
    visible_fraction: float = 1.
    truncated: bool = False
    segmentation: Optional[dict] = None


@dataclass
class _Placed:
    """Bookkeeping of a drawn object while later objects are placed over it."""
    obj: SyntheticObject
    region: Region
    full: int  # in-image pixel count before occlusion
    visible: int  # pixels still on top


def _render_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour field + blotchy texture + clutter, as float32 (H, W, 3)."""
    k = int(rng.integers(2, 5))
    low = rng.uniform(0., 255., (k, k, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    cells = max(size // 10, 2)
    blotch = rng.standard_normal((cells, cells, 3)).astype(np.float32)
    img += cv2.resize(blotch, (size, size), interpolation=cv2.INTER_LINEAR) * \
        np.float32(rng.uniform(4., 22.))
    for _ in range(int(rng.integers(1, 7))):  # clutter lines, possibly crossing
        p0 = rng.uniform(-.2 * size, 1.2 * size, 2)
        p1 = p0 + rng.uniform(-.8 * size, .8 * size, 2)
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1),
                 tuple(float(v) for v in rng.uniform(0., 255., 3)), int(rng.integers(1, 3)),
                 cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 5))):  # low-contrast irregular blobs
        c = rng.uniform(0, size, 2)
        axes = rng.uniform(.02 * size, .16 * size, 2)
        yy, xx = int(np.clip(c[1], 0, size - 1)), int(np.clip(c[0], 0, size - 1))
        color = img[yy, xx] + rng.uniform(-45., 45., 3).astype(np.float32)
        cv2.ellipse(img, (int(c[0]), int(c[1])), (int(axes[0]) + 1, int(axes[1]) + 1),
                    float(rng.uniform(0., 180.)), 0., float(rng.uniform(200., 360.)),
                    tuple(float(v) for v in color), -1, cv2.LINE_AA)
    return img


def _paint(img: np.ndarray, mask: np.ndarray, region: Region, rng: np.random.Generator,
           min_contrast: float) -> None:
    """Paint an object in place: a random colour (contrasting with what lies beneath
    it), linear shading and, sometimes, stripes of a second colour."""
    y0, y1, x0, x1 = region
    sub = img[y0:y1, x0:x1]
    under = sub[mask].mean(axis=0)
    for _ in range(8):
        color = rng.uniform(0., 255., 3).astype(np.float32)
        if np.linalg.norm(color - under) >= min_contrast:
            break
    ys, xs = np.nonzero(mask)
    ys, xs = ys.astype(np.float32), xs.astype(np.float32)
    phi = rng.uniform(0., 2. * math.pi)
    cos, sin = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    proj = (xs * cos + ys * sin) / np.float32(max(mask.shape))
    shade = 1. + np.float32(rng.uniform(-.45, .45)) * (proj - proj.mean())
    colors = np.broadcast_to(color, (len(xs), 3))
    if rng.random() < .2:  # stripes of a second colour
        color2 = rng.uniform(0., 255., 3).astype(np.float32)
        period = np.float32(rng.uniform(2.5, 6.))
        stripes = (np.floor((xs * sin - ys * cos) / period) % 2) == 0
        colors = np.where(stripes[:, None], color2, color)
    sub[mask] = colors * shade[:, None]


def _unit_noise(rng: np.random.Generator, shape: Tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance triangular noise (sum of two uniform bytes).

    About 5x faster than ``Generator.standard_normal`` and visually equivalent.
    """
    raw = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), np.uint8).reshape(2, *shape)
    noise = raw[0].astype(np.float32)
    noise += raw[1]
    noise -= 255.
    noise *= np.float32(1. / (255. * math.sqrt(1. / 6.)))
    return noise


def _box_ok(mask: np.ndarray, min_box_size: int) -> bool:
    """Whether the tight box of ``mask`` is at least ``min_box_size`` wide and high."""
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0 or cols[-1] - cols[0] + 1 < min_box_size:
        return False
    rows = np.flatnonzero(mask.any(axis=1))
    return rows[-1] - rows[0] + 1 >= min_box_size


def _hidden_pixels(owner: np.ndarray, placed: List[_Placed], mask: np.ndarray, region: Region,
                   max_occlusion: float, min_box_size: int) -> Optional[List[Tuple[int, int]]]:
    """Pixels a new mask would hide of each object below it, if that is allowed.

    Args:
        owner (np.ndarray): (H, W) index into ``placed`` of the topmost object, -1 for
            background.
        placed (list[_Placed]): Objects drawn so far.
        mask (np.ndarray): Bool mask of the new object over ``region``.
        region (tuple[int, int, int, int]): ``(y0, y1, x0, x1)`` of ``mask``.
        max_occlusion (float): Largest hidden fraction of an annotated object.
        min_box_size (int): Minimum width/height of the visible box of an annotated
            object.

    Returns:
        list[tuple[int, int]] | None: ``(index into placed, hidden pixels)`` for every
        object under the mask, or None when an annotated object would keep less than
        ``1 - max_occlusion`` of its pixels or a visible box under ``min_box_size``.
    """
    y0, y1, x0, x1 = region
    covered = owner[y0:y1, x0:x1][mask]
    ids, counts = np.unique(covered[covered >= 0], return_counts=True)
    hidden = list(zip(ids.tolist(), counts.tolist()))
    for j, cnt in hidden:
        below = placed[j]
        if not below.obj.annotated:
            continue
        if below.visible - cnt < (1. - max_occlusion) * below.full:
            return None
        # visible part of ``below`` once the new mask hides its pixels
        by0, by1, bx0, bx1 = below.region
        still = owner[by0:by1, bx0:bx1] == j
        iy0, iy1 = max(y0, by0), min(y1, by1)
        ix0, ix1 = max(x0, bx0), min(x1, bx1)
        still[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0] &= \
            ~mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        if not _box_ok(still, min_box_size):
            return None
    return hidden


def _set_visible_boxes(placed: List[_Placed], owner: np.ndarray) -> None:
    """Fill ``bbox``, ``truncated``, ``visible_fraction`` and the RLE ``segmentation``
    of every placed object from the pixels it keeps on top."""
    size = owner.shape[0]
    for idx, p in enumerate(placed):
        y0, y1, x0, x1 = p.region
        ys, xs = np.nonzero(owner[y0:y1, x0:x1] == idx)
        p.obj.visible_fraction = p.visible / max(p.full, 1)
        if len(xs):
            x, y = int(xs.min()) + x0, int(ys.min()) + y0
            w, h = int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
            p.obj.bbox = (x, y, w, h)
            p.obj.truncated = x == 0 or y == 0 or x + w == size or y + h == size
            rle = mask_utils.encode(np.asfortranarray(owner == idx, dtype=np.uint8))
            p.obj.segmentation = dict(
                size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def render_synthetic_image(rng: np.random.Generator,
                           img_size: int = 128,
                           min_objects: int = 1,
                           max_objects: int = 4,
                           distractor_prob: float = 0.6,
                           max_distractors: int = 3,
                           empty_prob: float = 0.03,
                           size_range: Tuple[float, float] = (12., 110.),
                           max_occlusion: float = 0.7,
                           background_contrast: float = 0.4,
                           min_box_size: int = 4,
                           max_tries: int = 12) -> Tuple[np.ndarray, List[SyntheticObject]]:
    """Render one synthetic image.

    Args:
        rng (np.random.Generator): Source of all randomness.
        img_size (int): Side of the square image in pixels.
        min_objects (int): Minimum number of annotated objects attempted in a
            non-empty image.
        max_objects (int): Maximum number of annotated objects attempted.
        distractor_prob (float): Probability that an image contains distractors
            (1 to ``max_distractors`` of them).
        max_distractors (int): Maximum number of distractors in an image.
        empty_prob (float): Probability that an image has no annotated object.
        size_range (tuple[float, float]): Range of the nominal object size
            (square root of the unrotated box area), sampled log-uniformly.
        max_occlusion (float): Largest fraction of an annotated object that may be
            hidden by objects drawn over it.
        background_contrast (float): Scale of the background's deviation from
            mid-grey (1 = full-range colours and clutter; smaller = objects stand
            out more, which a small detector trained from scratch needs to learn
            within a CPU-sized schedule). Distractors keep full contrast.
        min_box_size (int): Minimum width and height of an annotated box.
        max_tries (int): Placement attempts per object before it is dropped.

    Returns:
        tuple[np.ndarray, list[SyntheticObject]]: The BGR uint8 image of shape
        ``(img_size, img_size, 3)`` and every placed object (annotated ones and
        distractors) in drawing order.
    """
    size = int(img_size)
    img = _render_background(rng, size)
    img = np.float32(128.) + (img - np.float32(128.)) * np.float32(background_contrast)
    owner = np.full((size, size), -1, np.int16)  # index of the topmost object
    placed: List[_Placed] = []

    n_obj = 0 if rng.random() < empty_prob else int(rng.integers(min_objects, max_objects + 1))
    n_dis = int(rng.integers(1, max_distractors + 1)) \
        if max_distractors > 0 and rng.random() < distractor_prob else 0
    items = [(True, int(rng.integers(len(SYNTHETIC_CLASSES)))) for _ in range(n_obj)]
    items += [(False, int(rng.integers(len(DISTRACTOR_TYPES)))) for _ in range(n_dis)]
    order = rng.permutation(len(items))
    log_lo, log_hi = math.log(size_range[0]), math.log(size_range[1])

    for item_idx in order:
        annotated, label = items[item_idx]
        geo = class_geometry(label, rng) if annotated else distractor_geometry(label, rng)
        nominal = math.exp(rng.uniform(log_lo, log_hi))
        aspect = math.exp(rng.uniform(-.45, .45))
        sx, sy = nominal * math.sqrt(aspect), nominal / math.sqrt(aspect)
        stroke = int(rng.integers(1, 3)) if geo.stroke else 0
        for _ in range(max_tries):
            theta = rng.uniform(0., 2. * math.pi)
            cx, cy = rng.uniform(0., size, 2)
            raster = rasterize(geo, sx, sy, theta, cx, cy, stroke, size)
            if raster is None:
                continue
            mask, region, inside = raster
            if inside < .6 or not mask.any():
                continue
            if annotated and not _box_ok(mask, min_box_size):
                continue
            hidden = _hidden_pixels(owner, placed, mask, region, max_occlusion, min_box_size)
            if hidden is None:
                continue
            for j, cnt in hidden:
                placed[j].visible -= cnt
            y0, y1, x0, x1 = region
            full = int(mask.sum())
            owner[y0:y1, x0:x1][mask] = len(placed)
            placed.append(_Placed(SyntheticObject(label, annotated), region, full, full))
            _paint(img, mask, region, rng, min_contrast=70.)
            break

    _set_visible_boxes(placed, owner)
    if rng.random() < .5:
        img = cv2.GaussianBlur(img, (3, 3), float(rng.uniform(.3, .9)))
    img += _unit_noise(rng, (size, size, 3)) * np.float32(rng.uniform(3., 10.))
    np.clip(img, 0., 255., out=img)
    return img.astype(np.uint8), [p.obj for p in placed]
