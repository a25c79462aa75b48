"""Annotation writers of the synthetic dataset: COCO JSON and Pascal VOC XML.

Both writers take the same calls: :meth:`add_image` once per written JPEG with its
annotated objects, then :meth:`end_split` once per split. They describe the same image
files; boxes are ``SyntheticObject.bbox`` = ``(x, y, w, h)`` in pixels (pixel ``x``
covers ``[x, x + 1)``).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence

import cv2
import numpy as np

from .render import SyntheticObject
from .shapes import SYNTHETIC_CLASSES

__all__ = [
    'DATASET_NAME', 'VOC_DIR', 'VOC_IMAGE_SETS', 'coco_ann_file', 'voc_image_set_file',
    'write_jpeg', 'CocoWriter', 'VocWriter', 'voc_xml'
]

#: Dataset name written into the COCO ``info`` and the VOC ``<source>``.
DATASET_NAME = 'mmkd_det synthetic shapes'
#: Folder of the Pascal VOC layout under the dataset root.
VOC_DIR = 'VOC2007'
#: Split -> VOC image-set name (``ImageSets/Main/<name>.txt``).
VOC_IMAGE_SETS: Dict[str, str] = {'train': 'trainval', 'val': 'test'}


def coco_ann_file(out_dir: str, split: str) -> str:
    """Path of the COCO annotation file of ``split``: ``annotations/instances_{split}.json``."""
    return osp.join(out_dir, 'annotations', f'instances_{split}.json')


def voc_image_set_file(voc_root: str, split: str) -> str:
    """Path of the VOC image-set list of ``split`` (see :data:`VOC_IMAGE_SETS`)."""
    return osp.join(voc_root, 'ImageSets', 'Main', f'{VOC_IMAGE_SETS[split]}.txt')


def write_jpeg(path: str, img: np.ndarray, quality: int) -> None:
    """Encode a BGR uint8 image as JPEG with OpenCV and write it to ``path``.

    Args:
        path (str): Output file.
        img (np.ndarray): (H, W, 3) BGR uint8 image.
        quality (int): JPEG quality (0-100).
    """
    ok, buf = cv2.imencode('.jpg', img, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError(f'OpenCV could not encode {path} as JPEG (image shape {img.shape}, '
                           f'dtype {img.dtype}); check the OpenCV build has JPEG support')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (no second copy of the bytes), copy where links fail."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class CocoWriter:
    """Collects the images and boxes of one split and writes a COCO ``instances`` file.

    Image ids are given by the caller (unique across splits); annotation ids restart at 1 in
    every split. Each annotation carries the visible-pixel RLE as ``segmentation`` and the
    box area as ``area``, so bbox and segm AP use the same size buckets.

    Args:
        out_dir (str): Dataset root; files go to ``annotations/instances_{split}.json``.
        version (int): Generator version, written as the ``info.version`` string.
    """

    def __init__(self, out_dir: str, version: int) -> None:
        self.out_dir = out_dir
        self.version = version
        self.categories = [
            dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(SYNTHETIC_CLASSES)
        ]
        self.images: List[dict] = []
        self.annotations: List[dict] = []
        os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)

    def add_image(self, img_path: str, img_id: int, width: int, height: int,
                  objects: Sequence[SyntheticObject]) -> None:
        """Record an image and its annotated objects.

        Args:
            img_path (str): The written JPEG; its base name is the COCO ``file_name``.
            img_id (int): COCO image id.
            width (int): Image width.
            height (int): Image height.
            objects (Sequence[SyntheticObject]): Annotated objects with a box.
        """
        self.images.append(
            dict(id=img_id, file_name=osp.basename(img_path), width=width, height=height))
        for obj in objects:
            x, y, w, h = obj.bbox
            self.annotations.append(
                dict(
                    id=len(self.annotations) + 1,
                    image_id=img_id,
                    category_id=obj.label + 1,
                    bbox=[x, y, w, h],
                    area=w * h,
                    segmentation=obj.segmentation,
                    iscrowd=0))

    def to_dict(self) -> dict:
        """The COCO dictionary of the images added since the last :meth:`end_split`."""
        return dict(
            info=dict(description=DATASET_NAME, version=str(self.version)),
            licenses=[],
            images=self.images,
            annotations=self.annotations,
            categories=self.categories)

    def end_split(self, split: str) -> str:
        """Write ``annotations/instances_{split}.json`` and start a new split.

        Returns:
            str: The written file.
        """
        path = coco_ann_file(self.out_dir, split)
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f)
        self.images, self.annotations = [], []
        return path


def voc_xml(file_name: str, width: int, height: int, objects: Sequence[SyntheticObject]) -> str:
    """Pascal VOC annotation XML of one image.

    Args:
        file_name (str): JPEG file name (``<filename>``).
        width (int): Image width.
        height (int): Image height.
        objects (Sequence[SyntheticObject]): Annotated objects with a box.

    Returns:
        str: The XML text; boxes in VOC's 1-based inclusive corners
        ``xmin = x + 1, ymin = y + 1, xmax = x + w, ymax = y + h``.
    """
    lines = [
        '<annotation>', f'\t<folder>{VOC_DIR}</folder>', f'\t<filename>{file_name}</filename>',
        f'\t<source><database>{DATASET_NAME}</database></source>',
        f'\t<size><width>{width}</width><height>{height}</height><depth>3</depth></size>',
        '\t<segmented>0</segmented>'
    ]
    for obj in objects:
        x, y, w, h = obj.bbox
        lines += [
            '\t<object>', f'\t\t<name>{SYNTHETIC_CLASSES[obj.label]}</name>',
            '\t\t<pose>Unspecified</pose>', f'\t\t<truncated>{int(obj.truncated)}</truncated>',
            '\t\t<difficult>0</difficult>', '\t\t<bndbox>', f'\t\t\t<xmin>{x + 1}</xmin>',
            f'\t\t\t<ymin>{y + 1}</ymin>', f'\t\t\t<xmax>{x + w}</xmax>',
            f'\t\t\t<ymax>{y + h}</ymax>', '\t\t</bndbox>', '\t</object>'
        ]
    lines.append('</annotation>')
    return '\n'.join(lines) + '\n'


class VocWriter:
    """Writes the Pascal VOC layout: ``JPEGImages`` (hard links to the written images),
    ``Annotations/<stem>.xml`` and one ``ImageSets/Main`` list per split.

    Args:
        voc_root (str): The ``VOC2007`` folder; its sub-folders are created.
    """

    def __init__(self, voc_root: str) -> None:
        self.voc_root = voc_root
        self.stems: List[str] = []
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(voc_root, sub), exist_ok=True)

    def add_image(self, img_path: str, img_id: int, width: int, height: int,
                  objects: Sequence[SyntheticObject]) -> None:
        """Link the image into ``JPEGImages`` and write its XML.

        Args:
            img_path (str): The written JPEG.
            img_id (int): Image id (unused: VOC names images by file stem).
            width (int): Image width.
            height (int): Image height.
            objects (Sequence[SyntheticObject]): Annotated objects with a box.
        """
        file_name = osp.basename(img_path)
        stem = osp.splitext(file_name)[0]
        _link_or_copy(img_path, osp.join(self.voc_root, 'JPEGImages', file_name))
        with open(osp.join(self.voc_root, 'Annotations', stem + '.xml'), 'w') as f:
            f.write(voc_xml(file_name, width, height, objects))
        self.stems.append(stem)

    def end_split(self, split: str) -> str:
        """Write the image-set list of ``split`` (one stem per line) and start a new split.

        Returns:
            str: The written file.
        """
        path = voc_image_set_file(self.voc_root, split)
        with open(path, 'w') as f:
            f.write(''.join(s + '\n' for s in self.stems))
        self.stems = []
        return path
