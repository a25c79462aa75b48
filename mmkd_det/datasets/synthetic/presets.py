"""The synthetic datasets of the benchmark tiers, by name, and which one a config reads.

* ``quick``: 800 + 200 images of 128 px in ``data/synthetic/`` (COCO and VOC layouts).
  The demo and the quick benchmark tier: detectors train in minutes and barely work
  (student about 4 mAP, teacher about 6).
* ``standard``: 3000 + 500 images of 192 px in ``data/synthetic_standard/`` (COCO
  layout), objects 18-165 px (the quick range scaled by 1.5 with the image). The
  standard tier (``configs/_base_/tiers/synthetic_standard.py``): a student that
  reaches above 20 mAP in its 8-epoch schedule, so that what a loss adds to a
  trained student can be told apart from a faster start (docs/benchmark.md).

Both have the same classes, distractors, occlusion and background as the generator's
defaults; only the size of the data and of the images differ.
"""
import os.path as osp
from typing import Dict, List, Optional

from .generate import generate_synthetic_dataset

__all__ = ['SYNTHETIC_PRESETS', 'generate_preset', 'presets_in_config']

#: preset name -> ``out_dir`` (relative to the working directory) and the
#: :func:`generate_synthetic_dataset` arguments
SYNTHETIC_PRESETS: Dict[str, dict] = {
    'quick':
    dict(out_dir='data/synthetic', num_train=800, num_val=200, img_size=128, seed=0),
    'standard':
    dict(
        out_dir='data/synthetic_standard',
        num_train=3000,
        num_val=500,
        img_size=192,
        seed=0,
        size_range=(18., 165.),
        formats=('coco', )),
}


def generate_preset(name: str, root: Optional[str] = None, force: bool = False) -> dict:
    """Generate (or reuse, see :func:`generate_synthetic_dataset`) preset ``name``
    under ``root`` (default: the working directory); ``force`` regenerates.

    Raises:
        KeyError: ``name`` is not a preset; the message lists them.
    """
    if name not in SYNTHETIC_PRESETS:
        raise KeyError(f'unknown synthetic dataset preset {name!r}; choose one of '
                       f'{sorted(SYNTHETIC_PRESETS)}.')
    kwargs = dict(SYNTHETIC_PRESETS[name])
    out_dir = kwargs.pop('out_dir')
    return generate_synthetic_dataset(osp.join(root or '.', out_dir), force=force, **kwargs)


def _data_roots(node) -> List[str]:
    """Every ``data_root`` value in a nested dict / list config."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root' and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_data_roots(value))
    elif isinstance(node, (list, tuple)):
        for value in node:
            found.extend(_data_roots(value))
    return found


def presets_in_config(cfg) -> List[str]:
    """The presets whose folder a config's dataloaders read (by their ``data_root``),
    in :data:`SYNTHETIC_PRESETS` order.

    Args:
        cfg (dict | mmengine.Config): a config (its dataloaders are searched).
    """
    cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    roots = {
        osp.normpath(r)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for r in _data_roots(cfg.get(key))
    }
    return [n for n, p in SYNTHETIC_PRESETS.items() if osp.normpath(p['out_dir']) in roots]
