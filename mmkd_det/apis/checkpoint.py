"""Check that a checkpoint fits the model a config builds, before any step or score.

Two kinds of checkpoint meet configs here: a **Distiller** checkpoint (the
student's weights under ``student.*``, adapters under ``distill_losses.*``; the
teacher's are never saved) and a **plain detector** checkpoint (mmdet's keys:
``backbone.*``, ``neck.*``...). :func:`fit_checkpoint` compares one with the
model and

* evaluates the student when a Distiller checkpoint meets a plain detector
  config (the ``student.`` prefix is removed; the log says so);
* stops when a plain detector checkpoint meets a Distiller config (the fix:
  the student's plain config, or ``teacher_ckpt`` for a teacher);
* stops when more than :data:`MAX_MISMATCHED_KEYS` keys are missing or
  unexpected (a wrong config/checkpoint pair would otherwise be scored or
  trained with random weights after a log line); fewer are logged;
* stops on tensors of other shapes, unless fine-tuning allows them.

:class:`CheckpointCheckHook` runs it on what the Runner loads (``load_from``,
``resume``); :func:`add_checkpoint_checks` registers it on a built Runner.
"""
import functools
import logging
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import find_latest_checkpoint
from torch import nn

from ..compat import CheckpointError, checkpoint_key, checkpoint_state_dict
from ..models.distillers.teacher_loading import (is_distiller_state, split_student,
                                                 strip_module_prefix)

#: more missing + unexpected keys than this is an error, not a warning
MAX_MISMATCHED_KEYS = 4
#: the command that turns a Distiller checkpoint into a plain student checkpoint
EXPORT_CMD = 'python tools/model_converters/export_student.py'


def _examples(keys: List[str]) -> str:
    return f'{len(keys)} ({", ".join(keys[:5])}{", ..." if len(keys) > 5 else ""})'


def fit_checkpoint(model: nn.Module,
                   checkpoint: dict,
                   path: str,
                   key: str = 'load_from',
                   allow_shape_mismatch: bool = False) -> dict:
    """Check ``checkpoint`` against ``model`` and adapt its kind in place.

    Args:
        model (nn.Module): the (unwrapped) model the config built.
        checkpoint (dict): the loaded checkpoint; a Distiller checkpoint met by
            a plain detector gets its ``state_dict`` replaced by the student's.
        path (str): the checkpoint file, for messages.
        key (str): the config key or option that named it (``load_from``,
            ``resume``, ``checkpoint``), for messages.
        allow_shape_mismatch (bool): accept tensors of other shapes (they stay
            unloaded), as fine-tuning a model-zoo detector on other classes
            with ``load_from`` does. Defaults to False.

    Returns:
        dict: ``checkpoint``.

    Raises:
        CheckpointError: no state dict, a plain checkpoint for a Distiller,
            more than :data:`MAX_MISMATCHED_KEYS` missing/unexpected keys, or
            (unless allowed) tensors of other shapes.
    """
    state = strip_module_prefix(checkpoint_state_dict(checkpoint, path, key))
    own = model.state_dict()
    source = f'{key} {path!r}'
    if is_distiller_state(state) and not is_distiller_state(own):
        state, rest = split_student(state)
        checkpoint['state_dict'] = state
        print_log(
            f'{source} is a Distiller checkpoint and the config a plain detector: using its '
            f'student ({len(state)} tensors; {len(rest)} distillation tensors not used). '
            f'`{EXPORT_CMD} {path} <out>.pth` writes the student alone.',
            logger='current',
            level=logging.WARNING)
    elif is_distiller_state(own) and not is_distiller_state(state):
        raise CheckpointError(
            f'{source} is a plain detector checkpoint (no `student.*` keys) but the config '
            'builds a Distiller. To evaluate or fine-tune a detector trained alone (or an '
            "exported student), use its plain detector config (the Distiller's student "
            'cfg_path); a teacher checkpoint belongs in model.teacher_ckpt.')
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [
        f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    fix = ('Check that the config is the one the checkpoint was trained with (architecture, '
           'num_classes, widths)')
    if len(missing) + len(unexpected) > MAX_MISMATCHED_KEYS:
        raise CheckpointError(
            f'{source} does not fit the model of the config: {_examples(missing)} missing and '
            f'{_examples(unexpected)} unexpected keys (of {len(own)} in the model). {fix}; a '
            f'Distiller checkpoint goes with its distillation config or is exported with '
            f'`{EXPORT_CMD}`.')
    if resized and not allow_shape_mismatch:
        raise CheckpointError(f'{source} does not fit the model of the config: '
                              f'{_examples(resized)} tensors have other shapes. {fix}.')
    if missing or unexpected or resized:
        print_log(
            f'{source}: {len(missing)} missing keys {missing}, {len(unexpected)} unexpected '
            f'keys {unexpected}, {len(resized)} tensors of other shapes {resized} (not loaded).',
            logger='current',
            level=logging.WARNING)
    return checkpoint


class CheckpointCheckHook(Hook):
    """Run :func:`fit_checkpoint` on every checkpoint the Runner loads
    (``load_from``, ``resume``), and name that key in load errors.

    Args:
        key (str, optional): the name errors give the checkpoint; default
            ``'resume'`` or ``'load_from'``, as the Runner uses it.
        allow_shape_mismatch (bool): see :func:`fit_checkpoint`; never allowed
            when resuming.
    """
    priority = 'VERY_HIGH'  # before hooks that read the weights (EMAHook)

    def __init__(self, key: Optional[str] = None, allow_shape_mismatch: bool = False) -> None:
        self.key = key
        self.allow_shape_mismatch = allow_shape_mismatch

    def _key(self, runner) -> str:
        return self.key or ('resume' if runner._resume else 'load_from')

    def before_run(self, runner) -> None:
        """Make the Runner's ``load_checkpoint`` (which ``load_or_resume``, right after
        ``before_run``, and ``resume`` call) name the key in the loader's errors."""
        load = runner.load_checkpoint
        if getattr(load, 'checkpoint_key_named', False):
            return
        key = self._key(runner)

        @functools.wraps(load)
        def load_checkpoint(*args, **kwargs):
            with checkpoint_key(key):
                return load(*args, **kwargs)

        load_checkpoint.checkpoint_key_named = True
        runner.load_checkpoint = load_checkpoint

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        path = runner._load_from or find_latest_checkpoint(runner.work_dir)  # auto resume
        fit_checkpoint(model, checkpoint, str(path), self._key(runner), self.allow_shape_mismatch
                       and not runner._resume)


def add_checkpoint_checks(runner,
                          key: Optional[str] = None,
                          allow_shape_mismatch: bool = False) -> CheckpointCheckHook:
    """Register a :class:`CheckpointCheckHook` on a built ``runner`` and return it.

    Args:
        runner (Runner): the Runner, before ``train()`` / ``test()``.
        key (str, optional): see :class:`CheckpointCheckHook`.
        allow_shape_mismatch (bool): see :func:`fit_checkpoint`.

    Returns:
        CheckpointCheckHook: the registered hook.
    """
    hook = CheckpointCheckHook(key, allow_shape_mismatch)
    runner.register_hook(hook)
    return hook
