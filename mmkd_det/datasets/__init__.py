"""Datasets of mmkd_det: the embedded synthetic detection dataset (:mod:`.synthetic`)."""
from .synthetic import (DISTRACTOR_TYPES, SIZE_BUCKETS, SYNTHETIC_CLASSES,
                        generate_synthetic_dataset, load_coco_stats)

__all__ = [
    'SYNTHETIC_CLASSES', 'DISTRACTOR_TYPES', 'SIZE_BUCKETS', 'generate_synthetic_dataset',
    'load_coco_stats'
]
