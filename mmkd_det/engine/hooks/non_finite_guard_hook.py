"""Stop a run whose losses or weights went NaN/inf before it writes a checkpoint."""
import logging
import math
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmkd_det.registry import HOOKS
from .utils import logged_values, unwrap_model

#: what usually makes a detector (or its distillation) diverge, and the knob for it
LIKELY_CAUSES = (
    'a learning rate too high for this batch size (optim_wrapper.optimizer.lr)',
    'a warm-up too short (the LinearLR param_scheduler)',
    'no gradient clipping (optim_wrapper.clip_grad=dict(max_norm=35, norm_type=2))',
)
DISTILL_CAUSES = (
    'a distillation loss_weight too large or warmup_iters too short',
    'a teacher checkpoint that does not match the teacher config, its classes or '
    'its preprocessing',
)


def non_finite_tensors(state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Names of the floating-point tensors of ``state_dict`` holding a NaN or inf.

    One host synchronisation per device: the per-tensor flags are stacked on the
    device and read back together.

    Args:
        state_dict (Mapping[str, Tensor]): e.g. ``model.state_dict()``.

    Returns:
        list[str]: the offending keys, in ``state_dict`` order (empty if all finite).
    """
    by_device: Dict[torch.device, List[str]] = {}
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            by_device.setdefault(value.device, []).append(key)
    bad = set()
    for keys in by_device.values():
        flags = torch.stack([torch.isfinite(state_dict[k]).all() for k in keys]).cpu()
        bad.update(k for k, ok in zip(keys, flags.tolist()) if not ok)
    return [k for k in state_dict if k in bad]


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Stop training when a step's losses or the weights about to be saved are
    not finite, so a diverged run never writes a checkpoint.

    * Losses, every iteration: each logged ``loss`` key (the task losses and
      the Distiller's ``distill.*`` terms, with or without distillation
      active) is read from the message hub, where
      :class:`~mmengine.hooks.RuntimeInfoHook` has already copied it to the
      host: no extra device synchronisation per step.
    * Weights, where a checkpoint may follow: at the end of every epoch, at the
      iterations a by-iteration :class:`~mmengine.hooks.CheckpointHook` saves,
      after a validation when a CheckpointHook keeps the best checkpoint (one
      synchronisation each), and in ``before_save_checkpoint`` on the state
      dict about to be written (any writer).

    mmengine's CheckpointHook removes the oldest checkpoint (``max_keep_ckpts``)
    *before* it writes the new one; this hook's priority (``LOW``) puts its
    checks before the CheckpointHook's (``VERY_LOW``) in every stage, so the
    error comes before anything is deleted or written: the last good checkpoint
    stays. A step whose loss is finite may still leave non-finite weights (a
    huge gradient); the next step's loss or the weight check before a save
    catches them.

    The error is a ``FloatingPointError`` naming the non-finite losses (task or
    distillation) or tensors, the iteration and the likely causes. Only the
    first guard registered acts (the runtime bases may both add one).
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._active = True
        self._ckpt_hooks: List[CheckpointHook] = []

    def before_run(self, runner) -> None:
        guards = [h for h in runner.hooks if isinstance(h, NonFiniteGuardHook)]
        self._active = guards[0] is self
        self._ckpt_hooks = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
        if not self._active:
            return
        first = runner.hooks.index(self)
        late = [type(h).__name__ for h in self._ckpt_hooks if runner.hooks.index(h) < first]
        if late:
            print_log(
                f'{late} run before NonFiniteGuardHook (priority {self.priority}): a '
                f'diverged run may rotate out its last good checkpoint before the guard '
                f'stops it. Give the checkpoint hook a lower priority than the guard.',
                logger='current',
                level=logging.WARNING)

    # ----------------------------------------------------------------- losses
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[Sequence[dict]] = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._active:
            return
        if outputs:
            losses = {k: v for k, v in logged_values(runner, outputs).items() if 'loss' in k}
            bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if bad:
                raise FloatingPointError(self._loss_message(runner, batch_idx, bad))
        if any(self._saves_this_iter(runner, h) for h in self._ckpt_hooks):
            self._check_weights(runner, unwrap_model(runner).state_dict(), runner.iter + 1)

    @staticmethod
    def _saves_this_iter(runner, hook: CheckpointHook) -> bool:
        """Whether the by-iteration ``hook`` writes a checkpoint after this iteration."""
        if hook.by_epoch:
            return False
        return (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner)))

    def _loss_message(self, runner, batch_idx: int, bad: Dict[str, float]) -> str:
        distill = {k: v for k, v in bad.items() if k.startswith('distill.')}
        task = {k: v for k, v in bad.items() if k not in distill and k != 'loss'}
        parts = [
            f'{kind} {", ".join(f"{k} = {v}" for k, v in group.items())}'
            for kind, group in (('task loss', task), ('distillation loss', distill)) if group
        ] or [f'total loss = {bad["loss"]}']
        return (f'Non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}, '
                f'batch {batch_idx + 1}): {"; ".join(parts)}. Training stopped '
                f'{self._kept(runner)} {self._causes(runner)}')

    # ---------------------------------------------------------------- weights
    def after_train_epoch(self, runner) -> None:
        if self._active:
            self._check_weights(runner, unwrap_model(runner).state_dict(), runner.iter)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        # a CheckpointHook with save_best may write after this validation
        if self._active and any(h.save_best for h in self._ckpt_hooks):
            self._check_weights(runner, unwrap_model(runner).state_dict(), runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the last line of defence, for any writer (the checks above run before
        # the CheckpointHook, which has already rotated old files out by now)
        if self._active:
            done = checkpoint.get('meta', {}).get('iter', runner.iter)
            self._check_weights(runner, checkpoint.get('state_dict', {}), done, saving=True)

    def _check_weights(self,
                       runner,
                       state_dict: Mapping[str, torch.Tensor],
                       done: int,
                       saving: bool = False) -> None:
        """Raise if ``state_dict`` (the weights after ``done`` iterations) is not finite."""
        bad = non_finite_tensors(state_dict)
        if not bad:
            return
        n_float = sum(1 for v in state_dict.values()
                      if isinstance(v, torch.Tensor) and v.is_floating_point())
        shown = ', '.join(bad[:5]) + (', ...' if len(bad) > 5 else '')
        stopped = 'and this checkpoint is not written.' if saving else self._kept(runner)
        raise FloatingPointError(
            f'Non-finite model weights after iteration {done} (epoch {runner.epoch + 1}): '
            f'{len(bad)} of {n_float} floating-point tensors hold NaN or inf ({shown}). '
            f'Training stopped {stopped} {self._causes(runner)}')

    # ---------------------------------------------------------------- message
    @staticmethod
    def _kept(runner) -> str:
        last = runner.message_hub.get_info('last_ckpt')
        where = f'the last good checkpoint is kept: {last}' if last else \
            'no checkpoint had been saved yet'
        return f'before any checkpoint was written from these weights ({where}).'

    @staticmethod
    def _causes(runner) -> str:
        causes = list(LIKELY_CAUSES)
        if hasattr(unwrap_model(runner), 'distill_losses'):
            causes += DISTILL_CAUSES
        return 'Likely causes: ' + '; '.join(causes) + '.'
