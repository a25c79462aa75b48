"""Statistics of the synthetic dataset: COCO size buckets and per-split counts.

The generator counts while it writes (:class:`SplitStats`, stored in ``meta.json``);
:func:`load_coco_stats` recounts a written COCO file independently, so the two can be
compared.
"""
from __future__ import annotations

import json
from typing import Sequence, Tuple

from .render import SyntheticObject
from .shapes import DISTRACTOR_TYPES, SYNTHETIC_CLASSES

__all__ = ['SIZE_BUCKETS', 'size_bucket', 'SplitStats', 'load_coco_stats']

#: COCO size buckets (box area in px²): small < 32², medium < 96² <= large.
SIZE_BUCKETS: Tuple[str, ...] = ('small', 'medium', 'large')


def size_bucket(area: float) -> str:
    """Return the COCO size bucket of a box area.

    Args:
        area (float): Box area in px².

    Returns:
        str: ``'small'`` (area < 32²), ``'medium'`` (32² <= area < 96²) or
        ``'large'``.
    """
    if area < 32**2:
        return 'small'
    if area < 96**2:
        return 'medium'
    return 'large'


class SplitStats:
    """Counts of one split, accumulated image by image.

    :meth:`to_dict` gives ``images``, ``empty_images``, ``boxes``, ``per_class`` (class
    name -> boxes), ``per_size`` (size bucket -> boxes, by ``w * h``), ``distractors``,
    ``images_with_distractors`` and ``per_distractor`` (distractor type -> count).
    """

    def __init__(self) -> None:
        self.counts = dict(
            images=0,
            empty_images=0,
            boxes=0,
            per_class=dict.fromkeys(SYNTHETIC_CLASSES, 0),
            per_size=dict.fromkeys(SIZE_BUCKETS, 0),
            distractors=0,
            images_with_distractors=0,
            per_distractor=dict.fromkeys(DISTRACTOR_TYPES, 0))

    def add_image(self, boxes: Sequence[SyntheticObject],
                  distractors: Sequence[SyntheticObject]) -> None:
        """Count one image.

        Args:
            boxes (Sequence[SyntheticObject]): Its annotated objects with a box.
            distractors (Sequence[SyntheticObject]): Its unannotated distractors.
        """
        st = self.counts
        for obj in boxes:
            _, _, w, h = obj.bbox
            st['per_class'][SYNTHETIC_CLASSES[obj.label]] += 1
            st['per_size'][size_bucket(w * h)] += 1
        for obj in distractors:
            st['per_distractor'][DISTRACTOR_TYPES[obj.label]] += 1
        st['images'] += 1
        st['boxes'] += len(boxes)
        st['empty_images'] += int(not boxes)
        st['distractors'] += len(distractors)
        st['images_with_distractors'] += int(bool(distractors))

    def to_dict(self) -> dict:
        """The counts as a JSON-serialisable dict (see the class docstring)."""
        return self.counts


def load_coco_stats(json_path: str) -> dict:
    """Count images, boxes, classes and COCO size buckets of a COCO json file.

    Args:
        json_path (str): Path to a COCO ``instances_*.json`` file.

    Returns:
        dict: ``images``, ``empty_images``, ``boxes``, ``per_class`` (name ->
        count) and ``per_size`` (``small``/``medium``/``large`` -> count, using
        ``w * h`` of each box).
    """
    with open(json_path) as f:
        data = json.load(f)
    names = {c['id']: c['name'] for c in data['categories']}
    per_class = dict.fromkeys(names.values(), 0)
    per_size = dict.fromkeys(SIZE_BUCKETS, 0)
    with_boxes = set()
    for ann in data['annotations']:
        per_class[names[ann['category_id']]] += 1
        per_size[size_bucket(ann['bbox'][2] * ann['bbox'][3])] += 1
        with_boxes.add(ann['image_id'])
    return dict(
        images=len(data['images']),
        empty_images=sum(1 for im in data['images'] if im['id'] not in with_boxes),
        boxes=len(data['annotations']),
        per_class=per_class,
        per_size=per_size)
