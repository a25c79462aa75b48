"""Strict, CPU-mapped, weights-only loading of the teacher's weights.

``teacher_ckpt`` is resolved by the path rule of :mod:`.model_config`
(current directory, then the mmkd_det project root; URLs as they are) and read
by :func:`mmkd_det.compat.load_checkpoint_file` (weights-only; a refused,
empty, truncated or corrupt file raises one error naming ``teacher_ckpt``).
"""
from typing import Dict, Optional, Tuple

from mmengine.logging import print_log
from torch import nn

from mmkd_det.compat import CheckpointError, checkpoint_state_dict, load_checkpoint_file
from .model_config import resolve_checkpoint_path

#: key prefix of the student's weights in a Distiller checkpoint
STUDENT_PREFIX = 'student.'


def strip_module_prefix(state: dict) -> dict:
    """``state`` without the ``module.`` prefix a (DDP-)wrapped model's keys carry."""
    if state and all(k.startswith('module.') for k in state):
        return {k[len('module.'):]: v for k, v in state.items()}
    return state


def is_distiller_state(state: dict) -> bool:
    """Whether ``state`` (a state dict) is a Distiller's: it has ``student.*`` keys."""
    return any(k.startswith(STUDENT_PREFIX) for k in state)


def split_student(state: dict) -> Tuple[Dict[str, object], Dict[str, object]]:
    """Split a Distiller state dict into the student's weights (prefix removed)
    and the rest (adapters and other ``distill_losses.*`` modules).

    Returns:
        tuple[dict, dict]: ``(student, rest)``.
    """
    student = {k[len(STUDENT_PREFIX):]: v for k, v in state.items() if k.startswith(STUDENT_PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(STUDENT_PREFIX)}
    return student, rest


def _teacher_state_dict(checkpoint: dict, ckpt: str) -> dict:
    state = strip_module_prefix(checkpoint_state_dict(checkpoint, ckpt, key='teacher_ckpt'))
    if is_distiller_state(state):
        # a checkpoint of a previous distillation run: its student is the teacher
        print_log(f'teacher_ckpt {ckpt!r} is a Distiller checkpoint; using its student.', 'current')
        state = split_student(state)[0]
    return state


def load_teacher_checkpoint(teacher: nn.Module, ckpt: Optional[str], strict: bool = True) -> None:
    """Load ``ckpt`` (path or URL) into ``teacher`` on the CPU.

    Raises a clear error for a missing file (listing every location tried), an
    unreachable URL, an unreadable or unsafe file, a file without weights,
    tensors of the wrong shape (different num_classes or architecture) and,
    when ``strict``, any missing or unexpected key: a teacher that silently
    keeps random weights is the most common cause of "distillation does not
    help".

    Args:
        teacher (nn.Module): the teacher detector.
        ckpt (str, optional): ``teacher_ckpt``: a local path (see the module
            docstring for how a relative one is found) or a URL.
        strict (bool): whether missing or unexpected keys are an error.
    """
    if not ckpt:
        raise ValueError('Distiller needs teacher_ckpt: the path or URL of the trained '
                         'teacher (train it first with tools/train.py on its own config).')
    is_url = ckpt.startswith(('http://', 'https://'))
    path = resolve_checkpoint_path(
        ckpt,
        'teacher_ckpt',
        hint='Train the teacher first (python tools/train.py <teacher config>) or point '
        'teacher_ckpt to its checkpoint (a local path or a model-zoo URL).')
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu', key='teacher_ckpt')
    except CheckpointError:
        raise
    except Exception as err:  # network errors come in many types
        if not is_url:
            raise
        raise RuntimeError(
            f'Could not download teacher_ckpt {ckpt!r} ({type(err).__name__}: {err}). '
            f'Without network, download it elsewhere and set teacher_ckpt to the local '
            f'file.') from err
    state = _teacher_state_dict(checkpoint, ckpt)
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
    print_log(f'Loaded teacher weights from {path} ({len(state)} tensors).', 'current')
