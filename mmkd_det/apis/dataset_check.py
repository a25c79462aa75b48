"""Dataset preflight: annotation files, classes, images and the boxes mmdet drops.

:func:`check_datasets` reads every annotation file a config names (the
train/val/test dataloaders, wrappers unrolled, and the evaluators' ``ann_file``)
once and reports, before anything is built:

* problems (a :class:`DatasetCheckError` lists them all): a missing, truncated or
  malformed file (the JSON error position, the missing COCO key, the XML error
  line), annotation entries without the fields mmdet reads, classes absent from
  a COCO file's categories, classes that do not match the model's
  ``num_classes`` (a Distiller's student), missing images and (``full`` mode)
  images OpenCV cannot decode;
* a summary per annotation file: images, boxes, the boxes mmdet 3.3 drops or
  ignores and why, images without any kept box and whether ``filter_cfg`` drops
  them.

The rules are those of mmdet 3.3's loaders. ``CocoDataset.parse_data_info``
skips an annotation that is marked ``ignore``, whose box does not overlap the
image (zero width or height, or fully outside), whose ``area <= 0`` or width or
height is below 1 px, or whose category is not among the classes; ``iscrowd``
boxes are kept as ignored. ``CocoDataset.filter_data`` (training only, with a
``filter_cfg``) drops, with ``filter_empty_gt``, images without any annotation
of the classes' categories, *counted before the box rules*, so an image whose
only boxes are dropped is still trained on as background, and with ``min_size``
images whose shorter side is smaller. ``XMLDataset`` (VOC) skips objects of
other classes, marks ``difficult`` ones (and those below
``filter_cfg.bbox_min_size``) ignored and keeps degenerate boxes;
``filter_empty_gt`` drops images without objects of the classes.

``cheap`` mode (run by ``tools/train.py``) parses the annotation files and
checks that a sample of images exists; ``full`` mode
(``tools/misc/check_dataset.py --full``) checks every image and decodes it.
"""
import hashlib
import json
import os
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.registry import DefaultScope

from mmkd_det.registry import DATASETS
from .preflight import PreflightError, annotated_evaluators, iter_datasets, join_root

#: images checked for existence per annotation file in ``cheap`` mode
SAMPLE_IMAGES = 16
#: keys a COCO detection annotation file must have
COCO_KEYS = ('images', 'annotations', 'categories')
_IMAGE_FIELDS = ('id', 'file_name', 'width', 'height')
_ANN_FIELDS = ('id', 'image_id', 'bbox', 'category_id', 'area')
_NOT_FOUND = ('not found. Put the dataset there (README "Data") or set data_root / ann_file '
              '(evaluators: ann_file) with --cfg-options.')
#: the reasons :func:`coco_box_summary` gives, in mmdet's order of checking
COCO_DROP_REASONS = ('marked ignore', 'zero width or height', 'fully outside the image',
                     'area <= 0 or side < 1 px', 'category not in classes',
                     'image_id not in images')


class DatasetCheckError(PreflightError):
    """The datasets of a config cannot be trained or evaluated on.

    Args:
        problems (Sequence[str]): one sentence per problem, each naming the file.
    """

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__('Dataset check failed:\n' + '\n'.join(f'  - {p}' for p in problems))


@dataclass
class SplitSummary:
    """What one annotation file holds and what mmdet will make of it."""
    where: str
    ann_file: str
    fmt: str
    images: int = 0
    boxes: int = 0
    kept: Optional[int] = None
    dropped: Dict[str, int] = field(default_factory=dict)
    ignored: Dict[str, int] = field(default_factory=dict)
    empty_images: int = 0
    empty_fate: str = ''
    filtered_images: Dict[str, int] = field(default_factory=dict)
    images_checked: int = 0
    notes: List[str] = field(default_factory=list)

    def format(self) -> str:
        """A few lines describing this file, for the console."""
        kept = '' if self.kept is None else f', {self.kept} kept by mmdet'
        lines = [
            f'{self.where}: {self.ann_file} ({self.fmt}): {self.images} images, '
            f'{self.boxes} boxes{kept}'
        ]
        for title, counts in (('dropped by mmdet', self.dropped), ('kept as ignored',
                                                                   self.ignored)):
            if any(counts.values()):
                lines.append(f'    {title}: ' + ', '.join(f'{n} {why}'
                                                          for why, n in counts.items() if n))
        if self.empty_images:
            fate = f' ({self.empty_fate})' if self.empty_fate else ''
            lines.append(f'    images without a kept box: {self.empty_images}{fate}')
        if any(self.filtered_images.values()):
            lines.append('    images dropped by filter_cfg: ' +
                         ', '.join(f'{n} {why}' for why, n in self.filtered_images.items()))
        lines += [f'    {note}' for note in self.notes]
        return '\n'.join(lines)


@dataclass
class DatasetReport:
    """The result of :func:`check_datasets`."""
    summaries: List[SplitSummary] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def format(self) -> str:
        """The summaries, then the problems, for the console."""
        text = [s.format() for s in self.summaries]
        if self.problems:
            text.append('Problems:\n' + '\n'.join(f'  - {p}' for p in self.problems))
        return '\n'.join(text)


# ------------------------------------------------------------------ reading
_COCO_CACHE: Dict[Tuple[str, int, int], object] = {}


def load_coco_json(path: str) -> dict:
    """Parse a COCO annotation file (each file once per process and version of it).

    Args:
        path (str): the JSON file.

    Returns:
        dict: its content.

    Raises:
        DatasetCheckError: the file is missing, not JSON (the error position and
            file size are named), not an object or lacks one of :data:`COCO_KEYS`.
    """
    if not osp.isfile(path):
        raise DatasetCheckError([f'{path}: annotation file {_NOT_FOUND}'])
    stat = os.stat(path)
    key = (osp.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _COCO_CACHE:
        _COCO_CACHE.clear()  # one file at a time is enough: the next check reuses it
        try:
            with open(path, 'rb') as f:
                _COCO_CACHE[key] = json.load(f)
        except json.JSONDecodeError as err:
            truncated = ' (the file ends there: it looks truncated)' \
                if err.pos >= stat.st_size - 1 else ''
            raise DatasetCheckError([
                f'{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno} '
                f'(character {err.pos} of {stat.st_size}){truncated}. Download or generate '
                f'the file again.'
            ]) from None
        except UnicodeDecodeError as err:
            raise DatasetCheckError([f'{path}: not a text (JSON) file: {err}.']) from None
    data = _COCO_CACHE[key]
    if not isinstance(data, dict):
        raise DatasetCheckError([
            f'{path}: the JSON holds a {type(data).__name__}, not a COCO object with '
            f'{", ".join(COCO_KEYS)}.'
        ])
    missing = [k for k in COCO_KEYS if k not in data]
    if missing:
        raise DatasetCheckError([
            f'{path}: no {", ".join(repr(k) for k in missing)} key (found: '
            f'{", ".join(repr(k) for k in data) or "none"}). A COCO detection file needs '
            f'{", ".join(COCO_KEYS)}; is it a results or panoptic file instead of '
            f'instances_*.json?'
        ])
    return data


def _missing_fields(entries: list, fields: Sequence[str], what: str, path: str) -> List[str]:
    bad = [e for e in entries if not isinstance(e, dict) or any(f not in e for f in fields)]
    if not bad:
        return []
    first = bad[0]
    lacks = [f for f in fields if f not in first] if isinstance(first, dict) else fields
    return [
        f'{path}: {len(bad)} {what} lack a field mmdet reads (the first, '
        f'{str(first)[:80]}, has no {", ".join(lacks)}); every entry needs '
        f'{", ".join(fields)}.'
    ]


# -------------------------------------------------------------------- COCO
def coco_box_summary(data: dict, classes: Sequence[str], summary: SplitSummary,
                     filter_cfg: Optional[dict]) -> Dict[int, int]:
    """Apply mmdet 3.3's ``CocoDataset`` rules to ``data``; fill ``summary``.

    Args:
        data (dict): a parsed COCO file (see :func:`load_coco_json`).
        classes (Sequence[str]): the dataset's classes.
        summary (SplitSummary): receives the counts.
        filter_cfg (dict, optional): the dataset's ``filter_cfg`` (None: none,
            as in test mode).

    Returns:
        Dict[int, int]: image id -> number of kept boxes.
    """
    cat_ids = {c['id'] for c in data['categories'] if c.get('name') in set(classes)}
    images = {img['id']: img for img in data['images']}
    kept = dict.fromkeys(images, 0)
    with_cat_ann = set()
    dropped, ignored = Counter(), Counter()
    for ann in data['annotations']:
        img = images.get(ann['image_id'])
        if img is None:
            dropped['image_id not in images'] += 1
            continue
        if ann['category_id'] in cat_ids:
            with_cat_ann.add(ann['image_id'])
        if ann.get('ignore', False):
            dropped['marked ignore'] += 1
            continue
        x1, y1, w, h = ann['bbox']
        inter_w = max(0, min(x1 + w, img['width']) - max(x1, 0))
        inter_h = max(0, min(y1 + h, img['height']) - max(y1, 0))
        if inter_w * inter_h == 0:
            dropped['zero width or height' if w <= 0 or h <= 0 else 'fully outside the image'] \
                += 1
            continue
        if ann['area'] <= 0 or w < 1 or h < 1:
            dropped['area <= 0 or side < 1 px'] += 1
            continue
        if ann['category_id'] not in cat_ids:
            dropped['category not in classes'] += 1
            continue
        if ann.get('iscrowd', False):
            ignored['iscrowd'] += 1
        kept[ann['image_id']] += 1
    summary.images, summary.boxes = len(images), len(data['annotations'])
    summary.kept = sum(kept.values())
    summary.dropped = {r: dropped[r] for r in COCO_DROP_REASONS if dropped[r]}
    summary.ignored = dict(ignored)
    summary.empty_images = sum(1 for n in kept.values() if n == 0)
    if filter_cfg is not None:
        min_size = filter_cfg.get('min_size', 0)
        no_ann = [i for i in images if i not in with_cat_ann]
        if filter_cfg.get('filter_empty_gt', False):
            summary.filtered_images['without annotations of the classes (filter_empty_gt)'] = \
                len(no_ann)
            degenerate = sum(1 for i in with_cat_ann if i in kept and kept[i] == 0)
            if degenerate:
                summary.notes.append(
                    f'{degenerate} images whose boxes are all dropped stay in training as '
                    f'background (filter_empty_gt counts annotations before the box rules)')
        else:
            summary.empty_fate = 'trained on as background: filter_empty_gt is off'
        small = sum(1 for img in images.values() if min(img['width'], img['height']) < min_size)
        if small:
            summary.filtered_images[f'with a side < {min_size} px (min_size)'] = small
    else:
        summary.empty_fate = 'all used: test mode or no filter_cfg'
    return kept


def _coco_problems(data: dict, path: str, classes: Optional[Sequence[str]]) -> List[str]:
    problems = _missing_fields(data['images'], _IMAGE_FIELDS, 'images', path)
    problems += _missing_fields(data['annotations'], _ANN_FIELDS, 'annotations', path)
    problems += _missing_fields(data['categories'], ('id', 'name'), 'categories', path)
    if problems:
        return problems
    if not data['images']:
        problems.append(f'{path}: the images list is empty.')
    bad_boxes = [
        a for a in data['annotations']
        if not (isinstance(a['bbox'], (list, tuple)) and len(a['bbox']) == 4 and all(
            isinstance(v, (int, float)) for v in a['bbox']))
    ]
    if bad_boxes:
        problems.append(f'{path}: {len(bad_boxes)} annotations have a bbox that is not four '
                        f'numbers [x, y, width, height] (e.g. id {bad_boxes[0]["id"]}: '
                        f'{bad_boxes[0]["bbox"]!r}).')
        return problems
    ann_ids = [a['id'] for a in data['annotations']]
    if len(set(ann_ids)) != len(ann_ids):
        dup = next(i for i, n in Counter(ann_ids).items() if n > 1)
        problems.append(f'{path}: annotation ids are not unique (e.g. {dup}); mmdet '
                        f'requires unique ids. Renumber the annotations.')
    names = [c['name'] for c in data['categories']]
    absent = [c for c in classes or () if c not in names]
    if absent:
        problems.append(
            f'{path}: classes {absent} are not among the file\'s categories {names}; mmdet '
            f'would never load their boxes and would shift the labels of the others. Set the '
            f'dataset\'s metainfo=dict(classes=...) to names of these categories.')
    return problems


# --------------------------------------------------------------------- VOC
def _voc_summary(ds: dict, ann_file: str, classes: Sequence[str], summary: SplitSummary,
                 problems: List[str]) -> List[str]:
    """Parse the VOC image list and its XML files; return the image paths."""
    try:
        with open(ann_file) as f:
            img_ids = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f'{ann_file}: cannot read the VOC image list: {err}.')
        return []
    if not img_ids:
        problems.append(f'{ann_file}: the VOC image list is empty.')
    sub_root = ds['data_prefix'].get('sub_data_root', '')
    img_dir = osp.join(sub_root, ds.get('img_subdir', 'JPEGImages'))
    xml_dir = osp.join(sub_root, ds.get('ann_subdir', 'Annotations'))
    filter_cfg = None if ds.get('test_mode', False) else ds.get('filter_cfg')
    bbox_min_size = (filter_cfg or {}).get('bbox_min_size')
    dropped, ignored, bad_xml, no_size, degenerate = Counter(), Counter(), [], 0, 0
    img_paths = []
    for img_id in img_ids:
        xml_path = osp.join(xml_dir, f'{img_id}.xml')
        img_paths.append(osp.join(img_dir, f'{img_id}.jpg'))
        try:
            root = ET.parse(xml_path).getroot()
            objects = []
            for obj in root.findall('object'):
                box = obj.find('bndbox')
                objects.append((obj.find('name').text,
                                [float(box.find(k).text)
                                 for k in ('xmin', 'ymin', 'xmax', 'ymax')], obj.find('difficult')))
        except FileNotFoundError:
            bad_xml.append(f'{xml_path}: not found')
            continue
        except ET.ParseError as err:
            bad_xml.append(f'{xml_path}: {err}')
            continue
        except (AttributeError, TypeError, ValueError):
            bad_xml.append(f'{xml_path}: an <object> lacks <name> or a numeric <bndbox> '
                           f'xmin/ymin/xmax/ymax')
            continue
        no_size += root.find('size') is None
        summary.boxes += len(objects)
        n_kept = 0
        for name, (x1, y1, x2, y2), difficult in objects:
            if name not in classes:
                dropped['class not in classes'] += 1
                continue
            n_kept += 1
            x1, y1, x2, y2 = (int(v) for v in (x1, y1, x2, y2))
            degenerate += x2 <= x1 or y2 <= y1
            if difficult is not None and int(difficult.text or 0):
                ignored['difficult'] += 1
            elif bbox_min_size is not None and min(x2 - x1, y2 - y1) < bbox_min_size:
                ignored[f'side < {bbox_min_size} px (bbox_min_size)'] += 1
        summary.kept = (summary.kept or 0) + n_kept
        summary.empty_images += n_kept == 0
    if bad_xml:
        problems.append(f'{len(bad_xml)} VOC annotation files of {ann_file} cannot be used '
                        f'(first: {bad_xml[0]}). Restore them or remove their ids from the list.')
    summary.images = len(img_ids)
    summary.dropped, summary.ignored = dict(dropped), dict(ignored)
    if degenerate:
        summary.notes.append(f'{degenerate} boxes with zero width or height are KEPT by '
                             f"mmdet's VOC loader (no area rule): check them")
    if no_size:
        summary.notes.append(f'{no_size} XML files have no <size>: mmdet reads those images '
                             f'at load time to get it')
    if filter_cfg and filter_cfg.get('filter_empty_gt', False):
        summary.empty_fate = 'dropped from training: filter_empty_gt'
        summary.filtered_images['without objects of the classes (filter_empty_gt)'] = \
            summary.empty_images
    else:
        summary.empty_fate = 'all used: ' + ('filter_empty_gt is off'
                                             if filter_cfg else 'test mode or no filter_cfg')
    return img_paths


# ------------------------------------------------------------------ images
def sample_spread(items: Sequence, k: int = SAMPLE_IMAGES) -> list:
    """``k`` of ``items`` spread evenly over them (all when there are at most ``k``)."""
    if len(items) <= k:
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def image_problems(paths: Sequence[str],
                   sizes: Optional[Sequence[Tuple[int, int]]] = None,
                   decode: bool = False,
                   progress: bool = False) -> List[str]:
    """Problems of the image files ``paths``: missing ones and, with ``decode``,
    those OpenCV (mmdet's default decoder) cannot decode (a truncated file
    included) and images whose (height, width) differ from the annotated ``sizes``.

    Args:
        paths (Sequence[str]): image files.
        sizes (Sequence[tuple], optional): annotated (height, width) per path.
        decode (bool): read and decode every file. Defaults to False.
        progress (bool): show an mmengine progress bar. Defaults to False.

    Returns:
        List[str]: one sentence per kind of problem (count, examples, fix).
    """
    missing, unreadable, wrong_size = [], [], []
    bar = None
    if progress and paths:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(paths), file=sys.stdout)  # the current stdout
    for i, path in enumerate(paths):
        if bar is not None:
            bar.update()
        if not osp.isfile(path):
            missing.append(path)
            continue
        if not decode:
            continue
        import cv2
        import numpy as np
        with open(path, 'rb') as f:
            raw = f.read()
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
        if img is None:
            unreadable.append(path)
            continue
        if sizes is not None and tuple(img.shape[:2]) != tuple(sizes[i]):
            wrong_size.append(f'{path} is {img.shape[0]}x{img.shape[1]}, annotated '
                              f'{sizes[i][0]}x{sizes[i][1]}')
    if bar is not None:
        sys.stdout.write('\n')
    problems = []
    for items, what, fix in (
        (missing, 'image files not found', 'check data_prefix / data_root'),
        (unreadable, 'images OpenCV cannot decode', 'replace or remove them'),
        (wrong_size, 'images whose size differs from the annotation (boxes would be wrong)',
         'fix width/height in the annotation file'),
    ):
        if items:
            problems.append(f'{len(items)} {what} (of {len(paths)} checked), '
                            f'e.g. {", ".join(items[:3])}: {fix}.')
    return problems


# ------------------------------------------------------------------- config
def _dataset_class(type_name):
    if not isinstance(type_name, str):
        return type_name
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        return DATASETS.get(type_name)


def _format_of(ds_cls, ann_file: str) -> Optional[str]:
    from mmdet.datasets import CocoDataset, XMLDataset
    if isinstance(ds_cls, type) and issubclass(ds_cls, XMLDataset):
        return 'voc'
    if isinstance(ds_cls, type) and issubclass(ds_cls, CocoDataset):
        return 'coco'
    return 'coco' if ann_file.endswith('.json') else None


def dataset_classes(ds: dict) -> Optional[Tuple[str, ...]]:
    """The classes of dataset config ``ds``: its ``metainfo``, else its class's
    ``METAINFO`` (None if neither names them)."""
    classes = (ds.get('metainfo') or {}).get('classes')
    if classes is None:
        ds_cls = _dataset_class(ds.get('type'))
        classes = getattr(ds_cls, 'METAINFO', {}).get('classes')
    return tuple(classes) if classes is not None else None


def model_num_classes(model: dict) -> Dict[str, int]:
    """``num_classes`` of the heads of ``model`` (a Distiller's: its student's),
    by dotted place; RPN heads (class-agnostic) are left out.

    Args:
        model (dict): the ``model`` of a config.

    Returns:
        Dict[str, int]: e.g. ``{'student.bbox_head': 80}``.
    """
    prefix = ''
    if model.get('student') is not None and model.get('teacher') is not None:
        from mmkd_det.models.distillers import load_model_cfg
        model, prefix = load_model_cfg(model['student'], 'student'), 'student.'
    found = {}

    def walk(node, path):
        if isinstance(node, dict):
            if isinstance(node.get('num_classes'), int) and path:
                found[prefix + path] = node['num_classes']
            for key, value in node.items():
                if key.endswith('head') and key != 'rpn_head' or key == 'roi_head':
                    walk(value, f'{path}.{key}' if path else key)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    walk(model, '')
    return found


def dataset_entries(cfg) -> Iterator[Tuple[str, dict, Optional[dict]]]:
    """``(where, dataset cfg, evaluator cfg)`` for every dataset of the train / val /
    test dataloaders (wrappers unrolled) and every evaluator with an ``ann_file``
    (then with the first dataset of the matching dataloader)."""
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        first = None
        for i, ds in enumerate(iter_datasets((loader or {}).get('dataset'))):
            first = first or ds
            yield f'{split}_dataloader' + (f'[{i}]' if i else ''), ds, None
        if split == 'train':
            continue
        for i, ev in enumerate(annotated_evaluators(cfg, split)):
            yield f'{split}_evaluator' + (f'[{i}]' if i else ''), first or {}, ev


def _resolved(ds: dict) -> dict:
    """``ds`` with ``ann_file`` and ``data_prefix`` joined to ``data_root`` as
    mmengine's ``BaseDataset`` does."""
    root = ds.get('data_root', '') or ''
    out = dict(ds)
    out['ann_file'] = join_root(root, ds.get('ann_file', '') or '')
    out['data_prefix'] = {
        k: join_root(root, v) if isinstance(v, str) else v
        for k, v in (ds.get('data_prefix') or {}).items()
    }
    return out


def read_annotations(
        where: str,
        ds: dict,
        evaluator: Optional[dict] = None) -> Tuple[SplitSummary, List[str], list, Optional[list]]:
    """Read one dataset's (``evaluator`` None) or evaluator's annotation file.

    Args:
        where (str): its place in the config, e.g. ``'train_dataloader'``.
        ds (dict): the dataset config, ``ann_file`` and ``data_prefix`` already
            under ``data_root``; for an evaluator, its dataloader's dataset.
        evaluator (dict, optional): an evaluator config with an ``ann_file``.

    Returns:
        tuple: the summary, the problems, the image paths of a dataset and their
        annotated (height, width) (None where the file does not give them).
    """
    classes = dataset_classes(ds) if ds else None
    ann_file = ds['ann_file'] if evaluator is None else evaluator['ann_file']
    fmt = 'coco' if evaluator is not None else _format_of(_dataset_class(ds.get('type')), ann_file)
    summary = SplitSummary(where, ann_file, fmt or 'unknown format')
    problems: List[str] = []
    try:
        if fmt == 'coco':
            data = load_coco_json(ann_file)
            problems += _coco_problems(data, ann_file, classes)
            summary.images, summary.boxes = len(data['images']), len(data['annotations'])
            if problems or evaluator is not None or classes is None:
                return summary, problems, [], None
            filter_cfg = None if ds.get('test_mode', False) else ds.get('filter_cfg')
            coco_box_summary(data, classes, summary, filter_cfg)
            img_dir = ds['data_prefix'].get('img', '')
            paths = [osp.join(img_dir, img['file_name']) for img in data['images']]
            sizes = [(img['height'], img['width']) for img in data['images']]
            return summary, problems, paths, sizes
        if fmt == 'voc':
            if not osp.isfile(ann_file):
                return summary, [f'{ann_file}: VOC image list {_NOT_FOUND}'], [], None
            paths = _voc_summary(ds, ann_file, classes or (), summary, problems)
            return summary, problems, paths, None
    except DatasetCheckError as err:
        return summary, problems + err.problems, [], None
    if not osp.exists(ann_file):
        problems.append(f'{ann_file}: annotation file {_NOT_FOUND}')
    return summary, problems, [], None


def _class_problems(where: str, classes: Optional[Sequence[str]], heads: Dict[str,
                                                                              int]) -> List[str]:
    wrong = {h: n for h, n in heads.items() if classes is not None and n != len(classes)}
    if not wrong:
        return []
    return [
        f'{where} has {len(classes)} classes {list(classes)} but the model\'s ' +
        ', '.join(f'{h}.num_classes is {n}' for h, n in wrong.items()) +
        '. Set num_classes to the number of classes (or the dataset\'s metainfo classes '
        'to the model\'s).'
    ]


# ------------------------------------------------------------------- cache
#: bump when the summary rules change: older cache entries are then ignored
CACHE_VERSION = 1


def cache_dir() -> str:
    """Where cheap-mode results are kept: ``$MMKD_DET_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mmkd_det/dataset_check`` (``~/.cache/...``)."""
    if os.environ.get('MMKD_DET_CACHE_DIR'):
        return os.environ['MMKD_DET_CACHE_DIR']
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(base, 'mmkd_det', 'dataset_check')


def _cache_path(ds: dict, evaluator: Optional[dict]) -> Optional[str]:
    """The cache file of a clean cheap check of this annotation file, keyed by the
    configs and the file's path, size and modification time."""
    ann_file = (evaluator or ds)['ann_file']
    try:
        stat = os.stat(ann_file)
    except OSError:
        return None
    key = json.dumps(
        [CACHE_VERSION, ds, evaluator,
         osp.realpath(ann_file), stat.st_size, stat.st_mtime_ns],
        sort_keys=True,
        default=str)
    return osp.join(cache_dir(), hashlib.sha1(key.encode()).hexdigest() + '.json')


def _cached_read(where: str, ds: dict,
                 evaluator: Optional[dict]) -> Tuple[SplitSummary, List[str], list]:
    """:func:`read_annotations` with the image sample, from the cache when this
    file was read clean before; clean results are stored (failures to store are
    ignored: the cache only saves time)."""
    path = _cache_path(ds, evaluator)
    if path and osp.isfile(path):
        try:
            with open(path) as f:
                stored = json.load(f)
            summary = SplitSummary(**stored['summary'])
            summary.where = where
            return summary, [], stored['sample']
        except (OSError, ValueError, TypeError, KeyError):
            pass
    summary, problems, paths, _ = read_annotations(where, ds, evaluator)
    sample = sample_spread(paths)
    if path and not problems:
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            tmp = f'{path}.{os.getpid()}.tmp'
            with open(tmp, 'w') as f:
                json.dump(dict(summary=asdict(summary), sample=sample), f)
            os.replace(tmp, path)
        except OSError:
            pass
    return summary, problems, sample


def check_datasets(cfg, full: bool = False, progress: bool = True) -> DatasetReport:
    """Check every dataset and evaluator annotation file of ``cfg``; a dataset or
    evaluator identical to an earlier one is checked once.

    Args:
        cfg (Config | dict): a training or test config.
        full (bool): check and decode every image (slow on large datasets);
            otherwise only that a sample of :data:`SAMPLE_IMAGES` per file exists,
            and a file read clean before (same configs, path, size and time) is not
            read again (see :func:`cache_dir`).
        progress (bool): show a progress bar over the images in ``full`` mode.

    Returns:
        DatasetReport: the summaries; ``problems`` is empty when training may start.
    """
    report = DatasetReport()
    heads = model_num_classes(cfg.get('model') or {})
    done: Dict[str, str] = {}
    for where, ds, evaluator in dataset_entries(cfg):
        ds = _resolved(ds) if ds else ds
        if not (ds or {}).get('ann_file') and evaluator is None:
            continue
        same = json.dumps([ds, evaluator], sort_keys=True, default=str)
        if same in done:
            continue
        done[same] = where
        if (evaluator or ds).get('backend_args'):
            summary = SplitSummary(where, (evaluator or ds)['ann_file'], 'remote')
            summary.notes.append('not checked: read through backend_args (a file client)')
            report.summaries.append(summary)
            continue
        problems = [] if evaluator else _class_problems(where, dataset_classes(ds), heads)
        if full:
            summary, found, paths, sizes = read_annotations(where, ds, evaluator)
            found += image_problems(paths, sizes, decode=True, progress=progress)
        else:
            summary, found, paths = _cached_read(where, ds, evaluator)
            found += image_problems(paths)
        summary.images_checked = len(paths)
        problems += found
        report.summaries.append(summary)
        report.problems += [p if p.startswith(where) else f'{where}: {p}' for p in problems]
    return report


def run_dataset_check(cfg,
                      full: bool = False,
                      progress: bool = True,
                      verbose: bool = True) -> DatasetReport:
    """:func:`check_datasets`, printing the summary; raise on problems.

    Raises:
        DatasetCheckError: naming every problem found.
    """
    report = check_datasets(cfg, full=full, progress=progress)
    if verbose and report.summaries:
        print('[mmkd_det] dataset check (' + ('full' if full else 'cheap: annotation files, '
                                              'a sample of images') + '):\n' +
              '\n'.join(s.format() for s in report.summaries))
    if report.problems:
        raise DatasetCheckError(report.problems)
    return report


def is_main_process_env() -> bool:
    """Whether this process is rank 0 of a launch, read from the environment
    (``RANK``, set by torchrun / slurm wrappers) before any process group exists."""
    return os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) == '0'
