"""Drive the Distiller's warm-up / stop-epoch schedule from the runner's progress."""
from typing import Optional, Sequence

from mmengine.hooks import Hook

from mmkd_det.registry import HOOKS
from .utils import unwrap_model


@HOOKS.register_module()
class DistillationScheduleHook(Hook):
    """Hand the runner's iteration and epoch to the model before every training
    iteration (``model.set_progress(iter=runner.iter, epoch=runner.epoch)``).

    The Distiller's ``warmup_iters`` and ``stop_epoch`` read this progress (see
    :class:`~mmkd_det.models.distillers.DistillSchedule`); a Distiller with
    either set refuses to train without it. Models without ``set_progress``
    are left alone. ``configs/_base_/distill_runtime.py`` adds this hook.
    """

    priority = 'HIGH'

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[Sequence[dict]] = None) -> None:
        model = unwrap_model(runner)
        if hasattr(model, 'set_progress'):
            model.set_progress(iter=runner.iter, epoch=runner.epoch)
