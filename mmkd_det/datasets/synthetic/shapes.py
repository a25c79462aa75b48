"""Shape primitives of the synthetic dataset: class and distractor geometry, rasterisation.

Every shape lives in the unit box ``[-0.5, 0.5]²`` and is made of filled polygons, holes
(polygons erased from the fill) and stroked closed polylines. :func:`rasterize` scales,
rotates and places a shape in an image and returns its pixel mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

__all__ = [
    'SYNTHETIC_CLASSES', 'DISTRACTOR_TYPES', 'ShapeGeometry', 'class_geometry',
    'distractor_geometry', 'rasterize'
]

#: Names of the annotated classes; COCO category id of ``SYNTHETIC_CLASSES[i]`` is
#: ``i + 1``. The dataset configs under ``configs/_base_/datasets`` repeat it.
SYNTHETIC_CLASSES: Tuple[str, ...] = ('disc', 'square', 'triangle', 'cross', 'ring', 'star')

#: Unannotated look-alike shapes. ``DISTRACTOR_TYPES[i]`` resembles
#: ``SYNTHETIC_CLASSES[i]``.
DISTRACTOR_TYPES: Tuple[str, ...] = ('crescent', 'hollow_square', 'hollow_triangle', 'tee',
                                     'thin_ring', 'partial_star')

_SHIFT = 4  # fractional bits of OpenCV polygon coordinates
_SCALE = float(1 << _SHIFT)
_SQUARE = np.array([[-.5, -.5], [.5, -.5], [.5, .5], [-.5, .5]])
_TRIANGLE = np.array([[0., -.5], [.5, .5], [-.5, .5]])


@dataclass
class ShapeGeometry:
    """Polygons of one shape in unit coordinates.

    Attributes:
        fill (list[np.ndarray]): Polygons (N, 2) filled with the object.
        holes (list[np.ndarray]): Polygons erased after filling.
        stroke (list[np.ndarray]): Closed polylines drawn with a thin stroke.
    """
    fill: List[np.ndarray]
    holes: List[np.ndarray]
    stroke: List[np.ndarray]


def _ellipse(radius: float, num: int = 40, cx: float = 0., cy: float = 0.) -> np.ndarray:
    """Regular ``num``-gon approximating a circle of ``radius`` centred at ``(cx, cy)``."""
    t = np.linspace(0., 2. * math.pi, num, endpoint=False)
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _star(num_arms: int, inner: float, keep: Optional[np.ndarray] = None) -> np.ndarray:
    """Star polygon; arms whose ``keep`` flag is False are flattened to ``inner``."""
    pts = []
    for k in range(2 * num_arms):
        angle = -math.pi / 2 + k * math.pi / num_arms
        radius = 0.5 if k % 2 == 0 else 0.5 * inner
        if k % 2 == 0 and keep is not None and not keep[k // 2]:
            radius = 0.5 * inner
        pts.append((radius * math.cos(angle), radius * math.sin(angle)))
    return np.asarray(pts)


def _plus(t: float) -> np.ndarray:
    """Plus sign whose arms have half-width ``t``."""
    return np.array([[-t, -.5], [t, -.5], [t, -t], [.5, -t], [.5, t], [t, t], [t, .5], [-t, .5],
                     [-t, t], [-.5, t], [-.5, -t], [-t, -t]])


def _tee(t: float) -> np.ndarray:
    """A plus sign without its top arm: a T whose bar and stem have half-width ``t``."""
    bar = -.5 + 2 * t
    return np.array([[-.5, -.5], [.5, -.5], [.5, bar], [t, bar], [t, .5], [-t, .5], [-t, bar],
                     [-.5, bar]])


def class_geometry(label: int, rng: np.random.Generator) -> ShapeGeometry:
    """Geometry of an annotated object of class ``SYNTHETIC_CLASSES[label]``.

    Args:
        label (int): Index into :data:`SYNTHETIC_CLASSES`.
        rng (np.random.Generator): Draws the per-object shape jitter.

    Returns:
        ShapeGeometry: The shape in unit coordinates.
    """
    name = SYNTHETIC_CLASSES[label]
    if name == 'disc':
        return ShapeGeometry([_ellipse(.5)], [], [])
    if name == 'square':
        return ShapeGeometry([_SQUARE], [], [])
    if name == 'triangle':
        apex = rng.uniform(-.25, .25)  # skewed apex: not always isosceles
        return ShapeGeometry([np.array([[apex, -.5], [.5, .5], [-.5, .5]])], [], [])
    if name == 'cross':
        return ShapeGeometry([_plus(rng.uniform(.14, .22))], [], [])
    if name == 'ring':
        return ShapeGeometry([_ellipse(.5)], [_ellipse(.5 * rng.uniform(.45, .65))], [])
    if name == 'star':
        return ShapeGeometry([_star(5, rng.uniform(.38, .5))], [], [])
    raise ValueError(f'unknown class {name!r}: add its geometry to class_geometry()')


def distractor_geometry(kind: int, rng: np.random.Generator) -> ShapeGeometry:
    """Geometry of an unannotated look-alike ``DISTRACTOR_TYPES[kind]``.

    Args:
        kind (int): Index into :data:`DISTRACTOR_TYPES`.
        rng (np.random.Generator): Draws the per-object shape jitter.

    Returns:
        ShapeGeometry: The shape in unit coordinates.
    """
    name = DISTRACTOR_TYPES[kind]
    if name == 'crescent':  # a disc with a bite taken out of it
        off = rng.uniform(.3, .55)
        return ShapeGeometry([_ellipse(.5)], [_ellipse(.45, cx=off)], [])
    if name == 'hollow_square':
        return ShapeGeometry([], [], [_SQUARE])
    if name == 'hollow_triangle':
        return ShapeGeometry([], [], [_TRIANGLE])
    if name == 'tee':  # a cross with one arm missing
        return ShapeGeometry([_tee(rng.uniform(.14, .22))], [], [])
    if name == 'thin_ring':
        return ShapeGeometry([], [], [_ellipse(.5)])
    if name == 'partial_star':  # star with two or three of its five arms
        keep = np.zeros(5, dtype=bool)
        keep[rng.choice(5, size=int(rng.integers(2, 4)), replace=False)] = True
        return ShapeGeometry([_star(5, rng.uniform(.38, .5), keep)], [], [])
    raise ValueError(f'unknown distractor {name!r}: add its geometry to distractor_geometry()')


def _to_cv_points(pts: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Image coordinates -> fixed-point OpenCV coordinates relative to ``(x0, y0)``."""
    return np.round((pts - (x0, y0)) * _SCALE).astype(np.int32)


def rasterize(geo: ShapeGeometry, sx: float, sy: float, theta: float, cx: float, cy: float,
              stroke: int,
              size: int) -> Optional[Tuple[np.ndarray, Tuple[int, int, int, int], float]]:
    """Rasterise a shape into a mask cropped to its (in-image) bounding region.

    Args:
        geo (ShapeGeometry): The shape in unit coordinates.
        sx (float): Width of the unit box in pixels.
        sy (float): Height of the unit box in pixels.
        theta (float): Rotation in radians (after scaling).
        cx (float): Image x of the shape's centre.
        cy (float): Image y of the shape's centre.
        stroke (int): Line thickness of ``geo.stroke`` polylines.
        size (int): Side of the square image.

    Returns:
        tuple | None: ``(mask, (y0, y1, x0, x1), inside_fraction)`` where ``mask``
        is a bool array of the region shape (exclusive ends) and ``inside_fraction``
        the fraction of the shape's bounding-box area inside the image; None if the
        region is empty.
    """
    cos, sin = math.cos(theta), math.sin(theta)

    def transform(p: np.ndarray) -> np.ndarray:
        # element-wise (no BLAS) so that the result does not depend on the CPU
        x, y = p[:, 0] * sx, p[:, 1] * sy
        return np.stack([x * cos - y * sin + cx, x * sin + y * cos + cy], axis=1)

    polys = {k: [transform(p) for p in getattr(geo, k)] for k in ('fill', 'holes', 'stroke')}
    pts = np.concatenate(polys['fill'] + polys['stroke'])
    pad = stroke + 1
    bx0, by0 = pts.min(axis=0) - pad
    bx1, by1 = pts.max(axis=0) + pad
    x0, y0 = max(int(math.floor(bx0)), 0), max(int(math.floor(by0)), 0)
    x1, y1 = min(int(math.ceil(bx1)) + 1, size), min(int(math.ceil(by1)) + 1, size)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    full_area = (bx1 - bx0) * (by1 - by0)
    inside = (min(bx1, size) - max(bx0, 0)) * (min(by1, size) - max(by0, 0))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)

    def cv_polys(kind: str) -> List[np.ndarray]:
        return [_to_cv_points(p, x0, y0) for p in polys[kind]]

    if polys['fill']:
        cv2.fillPoly(mask, cv_polys('fill'), 1, cv2.LINE_8, _SHIFT)
    if polys['holes']:
        cv2.fillPoly(mask, cv_polys('holes'), 0, cv2.LINE_8, _SHIFT)
    if polys['stroke']:
        cv2.polylines(mask, cv_polys('stroke'), True, 1, stroke, cv2.LINE_8, _SHIFT)
    return mask.astype(bool), (y0, y1, x0, x1), inside / max(full_area, 1e-6)
