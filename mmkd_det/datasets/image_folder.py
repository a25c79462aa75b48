"""A detection dataset of bare images: a folder without annotations (a user's
unlabelled pool), for label-free distillation (``Distiller(labels='pseudo' |
'none')``, :mod:`mmkd_det.models.distillers.labels`)."""
import os
import os.path as osp
from typing import List

from mmdet.datasets import BaseDetDataset
from PIL import Image

from mmkd_det.registry import DATASETS

#: file extensions listed by default (case-insensitive)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@DATASETS.register_module()
class ImageFolderDataset(BaseDetDataset):
    """Every image under ``data_root / data_prefix['img']`` (recursively, sorted),
    with no annotations.

    The train pipeline has no ``LoadAnnotations`` (there is nothing to load);
    ``PackDetInputs`` then gives samples without boxes, which the Distiller
    fills with the teacher's detections (``labels='pseudo'``) or trains without
    (``labels='none'``). The classes (``metainfo=dict(classes=...)`` or
    ``metainfo_from``) are the detectors' (visualisation and logs use them).

    Args:
        extensions (Sequence[str]): image file extensions to list.
            Defaults to :data:`IMAGE_EXTENSIONS`.
        metainfo_from (str, optional): a registered dataset type (e.g.
            ``'CocoDataset'``, ``'VOCDataset'``) whose ``METAINFO`` (classes,
            palette) this folder takes, unless ``metainfo`` is given.
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments
            (``data_root``, ``data_prefix=dict(img=...)``, ``metainfo``,
            ``pipeline``, ``indices``, ...); ``ann_file`` is not read.
    """

    def __init__(self, *args, extensions=IMAGE_EXTENSIONS, metainfo_from=None, **kwargs):
        self.extensions = tuple(e.lower() for e in extensions)
        kwargs.setdefault('ann_file', '')
        if metainfo_from is not None and kwargs.get('metainfo') is None:
            from mmdet.registry import DATASETS as MMDET_DATASETS
            dataset_cls = MMDET_DATASETS.get(metainfo_from)
            if dataset_cls is None or not hasattr(dataset_cls, 'METAINFO'):
                raise KeyError(f'ImageFolderDataset: metainfo_from={metainfo_from!r} is not a '
                               f'registered mmdet dataset type with a METAINFO (e.g. '
                               f'\'CocoDataset\', \'VOCDataset\').')
            kwargs['metainfo'] = dict(dataset_cls.METAINFO)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_prefix.get('img', '') or self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'ImageFolderDataset: image folder {root!r} does not exist. Set data_root and '
                f'data_prefix=dict(img=<folder of images>).')
        paths = sorted(
            osp.join(d, f) for d, _, files in os.walk(root, followlinks=True) for f in files
            if f.lower().endswith(self.extensions))
        if not paths:
            raise FileNotFoundError(f'ImageFolderDataset: no image with an extension in '
                                    f'{list(self.extensions)} under {root!r}.')
        data_list = []
        for img_id, path in enumerate(paths):
            with Image.open(path) as img:  # reads the header only
                width, height = img.size
            data_list.append(
                dict(img_path=path, img_id=img_id, width=width, height=height, instances=[]))
        return data_list
