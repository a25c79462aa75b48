"""Datasets of mmkd_det: the embedded synthetic detection dataset (:mod:`.synthetic`)
and bare image folders for label-free distillation (:mod:`.image_folder`)."""
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset
from .synthetic import (DISTRACTOR_TYPES, SIZE_BUCKETS, SYNTHETIC_CLASSES,
                        generate_synthetic_dataset, load_coco_stats)

__all__ = [
    'IMAGE_EXTENSIONS', 'ImageFolderDataset', 'SYNTHETIC_CLASSES', 'DISTRACTOR_TYPES',
    'SIZE_BUCKETS', 'generate_synthetic_dataset', 'load_coco_stats'
]
