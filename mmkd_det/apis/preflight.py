"""Checks run by tools/train.py before anything is built: fail fast and clearly.

:func:`check_config` checks that the files a config names exist; the dataset check
(:mod:`.dataset_check`) then reads them.

Relative paths follow one rule for ``teacher_ckpt``, teacher/student ``cfg_path`` and
data: the current directory first, then the mmkd_det project root (the checkout).
:func:`resolve_data_roots` applies it to the datasets' ``data_root`` and the
evaluators' ``ann_file`` (making a path found under the project root absolute);
a path found nowhere is reported with every location tried.
"""
import os.path as osp
from typing import Iterator, List


class PreflightError(RuntimeError):
    """A config points at data or weights that are not there."""


def iter_datasets(cfg) -> Iterator[dict]:
    """The leaf dataset configs of ``cfg``, dataset wrappers (``dataset=`` /
    ``datasets=``, e.g. ``RepeatDataset``, ``ConcatDataset``) unrolled."""
    if cfg is None:
        return
    if 'dataset' in cfg:
        yield from iter_datasets(cfg['dataset'])
    elif 'datasets' in cfg:
        for d in cfg['datasets']:
            yield from iter_datasets(d)
    else:
        yield cfg


def join_root(root: str, path: str) -> str:
    """``path`` under ``root`` unless absent or absolute (mmengine's rule for a
    dataset's ``ann_file`` and ``data_prefix`` under its ``data_root``)."""
    return path if not root or not path or osp.isabs(path) else osp.join(root, path)


def annotated_evaluators(cfg, split: str) -> List[dict]:
    """The ``{split}_evaluator`` configs (``split``: ``'val'`` / ``'test'``) that
    name an ``ann_file`` (e.g. ``CocoMetric``); one, a list or ``metrics=[...]``."""
    evaluators = cfg.get(f'{split}_evaluator')
    if isinstance(evaluators, dict):
        evaluators = evaluators.get('metrics', evaluators)
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    return [ev for ev in evaluators or () if isinstance(ev, dict) and ev.get('ann_file')]


def _fallback(path: str) -> str:
    """The first existing location of a relative ``path`` by the module's rule
    (made absolute when it is under the project root); else ``path`` unchanged."""
    if not path or osp.isabs(path) or osp.exists(path):
        return path
    from mmkd_det.models.distillers.model_config import project_candidates
    return next((c for c in project_candidates(path) if osp.exists(c)), path)


def resolve_data_roots(cfg) -> None:
    """Apply the module's path rule in place: a relative ``data_root`` of the
    train/val/test datasets, or ``ann_file`` of the val/test evaluators, that is
    absent from the current directory but present under the project root is
    replaced by that absolute path."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for ds in iter_datasets((cfg.get(key) or {}).get('dataset')):
            if ds.get('data_root'):
                ds['data_root'] = _fallback(ds['data_root'])
    for split in ('val', 'test'):
        for ev in annotated_evaluators(cfg, split):
            ev['ann_file'] = _fallback(ev['ann_file'])


def _tried(path: str) -> str:
    """``path`` with the locations the rule tried, for a relative one."""
    if osp.isabs(path):
        return path
    from mmkd_det.models.distillers.model_config import project_candidates
    return f'{path} (tried {" and ".join(project_candidates(path))})'


def missing_data(cfg) -> List[str]:
    """Paths named by the train/val/test datasets and the val/test evaluators that
    do not exist."""
    missing = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        for ds in iter_datasets(loader.get('dataset')):
            root = ds.get('data_root', '') or ''
            paths = [root] if root else []
            if ds.get('ann_file'):
                paths.append(join_root(root, ds['ann_file']))
            missing += [p for p in paths if p and not osp.exists(p) and p not in missing]
    for split in ('val', 'test'):
        missing += [
            ev['ann_file'] for ev in annotated_evaluators(cfg, split)
            if not osp.exists(ev['ann_file']) and ev['ann_file'] not in missing
        ]
    return missing


def check_config(cfg) -> None:
    """Raise :class:`PreflightError` naming absent data or teacher weights."""
    resolve_data_roots(cfg)
    missing = missing_data(cfg)
    if missing:
        raise PreflightError(
            'Dataset files not found: ' + ', '.join(_tried(p)
                                                    for p in missing) + '. Put the dataset there '
            '(COCO 2017 under data/coco/, VOC under data/VOCdevkit/, see README "Data"), '
            'or override the paths with --cfg-options, or generate the embedded synthetic '
            'data with `python tools/misc/gen_synthetic.py`.')
    model = cfg.get('model', {})
    ckpt = model.get('teacher_ckpt') if model.get('type') == 'Distiller' else None
    if ckpt:
        from mmkd_det.models.distillers.model_config import resolve_checkpoint_path
        try:
            resolve_checkpoint_path(
                ckpt,
                'teacher_ckpt',
                hint='Train the teacher first (python tools/train.py '
                '<teacher config>) or set model.teacher_ckpt (a local file or a model-zoo URL).')
        except FileNotFoundError as err:
            raise PreflightError(str(err)) from None
