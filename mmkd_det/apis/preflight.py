"""Checks run by tools/train.py before anything is built: fail fast and clearly."""
import os.path as osp
from typing import Iterator, List


class PreflightError(RuntimeError):
    """A config points at data or weights that are not there."""


def _datasets(cfg) -> Iterator[dict]:
    if cfg is None:
        return
    if 'dataset' in cfg:
        yield from _datasets(cfg['dataset'])
    elif 'datasets' in cfg:
        for d in cfg['datasets']:
            yield from _datasets(d)
    else:
        yield cfg


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def missing_data(cfg) -> List[str]:
    """Paths named by the train/val/test datasets that do not exist."""
    missing = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        for ds in _datasets(loader.get('dataset')):
            root = ds.get('data_root', '') or ''
            paths = [root] if root else []
            if ds.get('ann_file'):
                paths.append(_join(root, ds['ann_file']))
            missing += [p for p in paths if p and not osp.exists(p) and p not in missing]
    return missing


def check_config(cfg) -> None:
    """Raise :class:`PreflightError` naming absent data or teacher weights."""
    missing = missing_data(cfg)
    if missing:
        raise PreflightError(
            'Dataset files not found: ' + ', '.join(missing) + '. Put the dataset there '
            '(COCO 2017 under data/coco/, VOC under data/VOCdevkit/, see README "Data"), '
            'or override the paths with --cfg-options, or generate the embedded synthetic '
            'data with `python tools/misc/gen_synthetic.py`.')
    model = cfg.get('model', {})
    ckpt = model.get('teacher_ckpt') if model.get('type') == 'Distiller' else None
    if ckpt and '://' not in ckpt and not osp.isfile(ckpt):
        raise PreflightError(
            f'teacher_ckpt {ckpt!r} does not exist. Train the teacher first or set '
            f'model.teacher_ckpt (a local file or a model-zoo URL).')
