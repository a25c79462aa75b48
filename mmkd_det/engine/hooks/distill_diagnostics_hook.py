"""Log the distillation / task loss ratio and warn when it is far off."""
import logging
from typing import Mapping, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd_det.registry import HOOKS
from .utils import logged_values, unwrap_model


def loss_totals(values: Mapping[str, float]) -> Tuple[float, float]:
    """Sums of the distillation terms (``distill.*``) and of the task losses (the
    other keys containing ``loss``, except the runner's total ``loss``) of one
    step's logged values."""
    distill = sum(v for k, v in values.items() if k.startswith('distill.'))
    task = sum(v for k, v in values.items()
               if 'loss' in k and k != 'loss' and not k.startswith('distill.'))
    return distill, task


@HOOKS.register_module()
class DistillDiagnosticsHook(Hook):
    """Log ``distill_ratio`` (distillation / task loss) every training iteration
    and warn once when, after the warm-up, it is off by more than
    ``ratio_limit`` either way (a loss_weight off by orders of magnitude).

    It reads the values :class:`~mmengine.hooks.RuntimeInfoHook` has already put
    in the message hub (``train/<key>``), so it adds no device work to the step.
    Runs before the LoggerHook, which then logs ``distill_ratio`` with the
    losses. Models without ``distill_scale`` are left alone; with ``loss_calibration``
    the ratio is logged but never warned about (the calibrated factors, not the
    values, set each loss's strength).

    Args:
        ratio_limit (float): warning threshold. Defaults to 100.
    """

    priority = 'NORMAL'

    def __init__(self, ratio_limit: float = 100.0):
        if ratio_limit <= 1:
            raise ValueError(f'ratio_limit must be > 1, got {ratio_limit}.')
        self.ratio_limit = ratio_limit
        self._warned = False

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[Sequence[dict]] = None,
                         outputs: Optional[dict] = None) -> None:
        model = unwrap_model(runner)
        if not outputs or not hasattr(model, 'distill_scale'):
            return
        scale = model.distill_scale()
        if scale == 0.0:  # distillation stopped: nothing to compare
            return
        hub = runner.message_hub
        distill, task = loss_totals(logged_values(runner, outputs))
        ratio = distill / max(task, 1e-12)
        hub.update_scalar('train/distill_ratio', ratio)
        off = ratio > self.ratio_limit or 0 < ratio < 1 / self.ratio_limit
        # calibrated losses are set by their gradient share, not their value: a value
        # ratio far from 1 is expected there and loss_weight no longer sets the strength
        calibration = getattr(model, 'loss_calibration', None)
        if calibration is not None:
            return
        if scale == 1.0 and off and not self._warned:
            self._warned = True
            names = sorted(getattr(model, 'distill_losses', {}))
            effect = 'they will swamp the detection losses' if ratio > 1 else \
                'they do almost nothing'
            print_log(
                f'Distillation losses are {ratio:.3g}x the task loss at iteration '
                f'{runner.iter} (distill {distill:.4g}, task {task:.4g}): {effect}. Scale '
                f'the loss_weight of {names} by about {1 / ratio:.2g} if this is not '
                f'intended (logged as distill_ratio).',
                logger='current',
                level=logging.WARNING)
