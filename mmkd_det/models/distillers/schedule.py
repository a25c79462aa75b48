"""The distillation schedule: a linear warm-up and a stop epoch.

The factor depends on the training progress, which
:class:`~mmkd_det.engine.hooks.DistillationScheduleHook` sets before every
training iteration; code that calls the model itself sets it with
:meth:`DistillSchedule.set_progress`.
"""
from typing import Optional

#: what a runner config adds to drive the schedule (named in errors).
HOOK_CFG = "dict(type='DistillationScheduleHook')"


class DistillSchedule:
    """Factor of every distillation loss along training.

    ``min(1, (iter + 1) / warmup_iters)`` during the warm-up, 0 from epoch
    ``stop_epoch`` (0-based) on, 1 otherwise.

    Args:
        warmup_iters (int): iterations of the linear ramp. Defaults to 0 (off).
        stop_epoch (int, optional): first epoch without distillation.
            Defaults to None (never).
    """

    def __init__(self, warmup_iters: int = 0, stop_epoch: Optional[int] = None):
        if int(warmup_iters) != warmup_iters or warmup_iters < 0:
            raise ValueError(f'warmup_iters must be an integer >= 0, got {warmup_iters!r}.')
        if stop_epoch is not None and (int(stop_epoch) != stop_epoch or stop_epoch < 0):
            raise ValueError(f'stop_epoch must be None or an integer >= 0, got {stop_epoch!r}.')
        self.warmup_iters = int(warmup_iters)
        self.stop_epoch = None if stop_epoch is None else int(stop_epoch)
        self.iter: Optional[int] = None
        self.epoch: Optional[int] = None

    @property
    def needs_progress(self) -> bool:
        """Whether the factor depends on the training progress."""
        return self.warmup_iters > 0 or self.stop_epoch is not None

    def set_progress(self, iter: int, epoch: int = 0) -> None:
        """Set the current (0-based) training iteration and epoch."""
        self.iter, self.epoch = int(iter), int(epoch)

    def factor(self) -> float:
        """The current factor (a Python float: no device work).

        Raises:
            RuntimeError: the schedule is on but no progress was ever set.
        """
        if not self.needs_progress:
            return 1.0
        if self.iter is None:
            raise RuntimeError(
                f'The Distiller has warmup_iters={self.warmup_iters} and '
                f'stop_epoch={self.stop_epoch}, but nothing set the training progress, so '
                f'the schedule would be ignored. In a Runner, add {HOOK_CFG} to '
                f'custom_hooks (configs/_base_/distill_runtime.py has it); when calling the '
                f'model yourself, call model.set_progress(iter=..., epoch=...) first.')
        if self.stop_epoch is not None and self.epoch >= self.stop_epoch:
            return 0.0
        if self.warmup_iters > 0:
            return min(1.0, (self.iter + 1) / self.warmup_iters)
        return 1.0

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(warmup_iters={self.warmup_iters}, '
                f'stop_epoch={self.stop_epoch}, iter={self.iter}, epoch={self.epoch})')
