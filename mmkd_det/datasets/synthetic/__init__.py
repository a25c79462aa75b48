"""Deterministic synthetic object-detection dataset ("embedded synthetic dataset").

The demo, the tests and the benchmarks of ``mmkd_det`` all run on this dataset, so
it is generated on the fly (in a few seconds) instead of being downloaded. Every
image shows a few coloured geometric shapes of :data:`SYNTHETIC_CLASSES` on a
textured background. The dataset is built to be *hard enough* that detector
capacity matters (so that knowledge distillation has something to transfer):

* the background is a smooth random colour field plus blotchy texture, pixel noise
  and clutter (lines, low-contrast blobs);
* every object has a random colour drawn from the same distribution for all
  classes (colour never identifies the class), a random rotation, aspect-ratio
  jitter, a shading gradient and, sometimes, a stripe texture;
* object sizes are log-uniform over ``size_range`` so the COCO size buckets small
  (area < 32²), medium and large (area >= 96²) are all populated at 160 px;
* objects may overlap (partial occlusion, at most ``max_occlusion`` of an
  annotated object hidden) and may be cut by the image border;
* *unannotated distractors* that resemble the classes (a thin hollow square, a
  thin elliptic ring, a star with missing arms, ...) appear in many images. They
  carry no annotation, mirroring the argument of FRS (mannequins look like
  persons): useful features exist outside the ground-truth boxes;
* a fraction ``empty_prob`` of the images has no annotated object at all (they may
  still contain distractors, i.e. they are hard negatives).

Annotations are written in COCO format (``annotations/instances_{train,val}.json``)
and in Pascal VOC format (``VOC2007/``); both describe the same JPEG files. Each box
is the tight box of the *visible* pixels of the drawn shape (as in COCO and VOC),
clipped to the image. COCO annotations also carry the visible pixels as an RLE
``segmentation`` (for instance-segmentation students such as Mask R-CNN); their
``area`` stays the box area, so bbox and segm AP_s/m/l use the same buckets. The
generation is deterministic: image ``i`` of a split is rendered from its own random
generator seeded with ``(seed, split, i)``, so the same seed gives byte-identical
images and annotation files (for given numpy, OpenCV and libjpeg builds).

Modules, by concern:

* :mod:`.shapes`: class and distractor geometry in unit coordinates, rasterisation;
* :mod:`.render`: background, painting and occlusion control of one image
  (:func:`render_synthetic_image`);
* :mod:`.writers`: COCO JSON and Pascal VOC XML writers;
* :mod:`.stats`: size buckets and per-split counts (:func:`load_coco_stats`);
* :mod:`.generate`: the deterministic dataset generation and its reuse
  (:func:`generate_synthetic_dataset`);
* :mod:`.presets`: the datasets of the benchmark tiers by name (``quick``,
  ``standard``) and which of them a config reads.

The package itself imports only numpy, OpenCV and pycocotools (no mmdet/mmcv).

Example:
    >>> from mmkd_det.datasets.synthetic import generate_synthetic_dataset
    >>> info = generate_synthetic_dataset('data/synthetic', num_train=800,
    ...                                   num_val=200)  # doctest: +SKIP
    >>> info['stats']['val']['boxes']  # doctest: +SKIP
"""
from .generate import GENERATOR_VERSION, generate_synthetic_dataset
from .presets import SYNTHETIC_PRESETS, generate_preset, presets_in_config
from .render import SyntheticObject, render_synthetic_image
from .shapes import DISTRACTOR_TYPES, SYNTHETIC_CLASSES
from .stats import SIZE_BUCKETS, load_coco_stats, size_bucket

__all__ = [
    'SYNTHETIC_CLASSES', 'DISTRACTOR_TYPES', 'SIZE_BUCKETS', 'GENERATOR_VERSION', 'SyntheticObject',
    'render_synthetic_image', 'generate_synthetic_dataset', 'load_coco_stats', 'size_bucket',
    'SYNTHETIC_PRESETS', 'generate_preset', 'presets_in_config'
]
