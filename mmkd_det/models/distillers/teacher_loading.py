"""Strict, CPU-mapped loading of the teacher's weights."""
import os.path as osp
from typing import Optional

from mmengine.logging import print_log
from torch import nn


def _extract_state_dict(checkpoint: dict, ckpt: str) -> dict:
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state:
        raise RuntimeError(f'teacher_ckpt {ckpt!r} holds no state_dict.')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    if any(k.startswith('student.') for k in state):
        # a checkpoint of a previous distillation run: its student is the teacher
        print_log(f'teacher_ckpt {ckpt!r} is a Distiller checkpoint; using its student.', 'current')
        state = {k[len('student.'):]: v for k, v in state.items() if k.startswith('student.')}
    return state


def load_teacher_checkpoint(teacher: nn.Module, ckpt: Optional[str], strict: bool = True) -> None:
    """Load ``ckpt`` (path or URL) into ``teacher`` on the CPU.

    Raises a clear error for a missing file, an unreachable URL, tensors of the
    wrong shape (different num_classes or architecture) and, when ``strict``,
    any missing or unexpected key: a teacher that silently keeps random weights
    is the most common cause of "distillation does not help".
    """
    if not ckpt:
        raise ValueError('Distiller needs teacher_ckpt: the path or URL of the trained '
                         'teacher (train it first with tools/train.py on its own config).')
    is_url = ckpt.startswith(('http://', 'https://'))
    if not is_url and '://' not in ckpt and not osp.isfile(ckpt):
        raise FileNotFoundError(
            f'teacher_ckpt {ckpt!r} does not exist. Train the teacher first '
            f'(python tools/train.py <teacher config>) or point teacher_ckpt to its '
            f'checkpoint (a local path or a model-zoo URL).')
    from mmengine.runner.checkpoint import _load_checkpoint
    try:
        checkpoint = _load_checkpoint(ckpt, map_location='cpu')
    except Exception as err:  # network errors come in many types
        if is_url:
            raise RuntimeError(
                f'Could not download teacher_ckpt {ckpt!r} ({type(err).__name__}: {err}). '
                f'Without network, download it elsewhere and set teacher_ckpt to the local '
                f'file.') from err
        raise
    state = _extract_state_dict(checkpoint, ckpt)
    own = teacher.state_dict()
    wrong = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state.items() if k in own and hasattr(v, 'shape') and v.shape != own[k].shape
    ]
    if wrong:
        raise RuntimeError(
            f'teacher_ckpt {ckpt!r} does not match the teacher config: {len(wrong)} tensors '
            f'have other shapes, e.g. {wrong[:3]}. A different num_classes or architecture '
            f'in the teacher config is the usual cause.')
    missing, unexpected = teacher.load_state_dict(state, strict=False)
    if missing or unexpected:
        msg = (f'teacher_ckpt {ckpt!r} does not fit the teacher config: '
               f'{len(missing)} missing keys {missing[:8]}, {len(unexpected)} unexpected keys '
               f'{unexpected[:8]}.')
        if strict:
            raise RuntimeError(msg + ' Fix the teacher config/checkpoint pair, or set '
                               'teacher_strict=False to accept a partial load.')
        print_log(msg + ' (teacher_strict=False: continuing)', 'current', level=30)
    print_log(f'Loaded teacher weights from {ckpt} ({len(state)} tensors).', 'current')
