"""Run a hook written for a plain mmdet detector on the Distiller's student."""
import copy
from typing import Union

from mmengine.hooks import Hook

from mmkd_det.registry import HOOKS
from .utils import unwrap_model


class StudentRunnerView:
    """A runner whose ``model`` is the student of the wrapped runner's Distiller.

    Every other attribute (``epoch``, ``train_dataloader``, ``logger``, ...) is read
    from and written to the real runner. A model without a ``student`` (a plain
    detector run with the same config) is handed over as it is.
    """

    def __init__(self, runner):
        object.__setattr__(self, '_runner', runner)

    @property
    def model(self):
        """The student detector (no DDP wrapper), or the runner's model if it has none."""
        model = unwrap_model(self._runner)
        return getattr(model, 'student', model)

    def __getattr__(self, name: str):
        return getattr(self._runner, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._runner, name, value)


@HOOKS.register_module()
class StudentHook(Hook):
    """Call ``hook`` with a runner whose ``model`` is the Distiller's student.

    mmdet hooks that reach into the detector (``runner.model.bbox_head``) fail on a
    Distiller, whose detector is ``runner.model.student``. YOLOX's
    ``YOLOXModeSwitchHook`` is one: at ``max_epochs - num_last_epochs`` it switches
    the pipeline and sets ``model.bbox_head.use_l1``, an ``AttributeError`` on the
    Distiller. Wrapped, it sets the student's::

        custom_hooks = [dict(type='StudentHook',
                             hook=dict(type='YOLOXModeSwitchHook', num_last_epochs=15,
                                       priority=48))]

    Hooks that only touch the data (``PipelineSwitchHook``) or treat the model as a
    whole (``EMAHook``: it then also averages the distillation adapters, and its
    checkpoint keys keep the Distiller's ``student.`` prefix that
    ``export_student.py`` strips; ``SyncNormHook``) need no wrapper; ``EMAHook``
    must not be wrapped (its swapped ``state_dict`` keys would lose the prefix).

    Args:
        hook (dict | Hook): the wrapped hook or its config. Its ``priority`` (in the
            dict or on the hook) becomes this hook's.
    """

    def __init__(self, hook: Union[dict, Hook]):
        if isinstance(hook, dict):
            hook = copy.deepcopy(hook)
            priority = hook.pop('priority', None)
            hook = HOOKS.build(hook)
            if priority is not None:
                hook.priority = priority
        if not isinstance(hook, Hook):
            raise TypeError(f'StudentHook wraps an mmengine Hook or its config dict, got '
                            f'{type(hook).__name__}.')
        self.hook = hook
        self.priority = hook.priority

    def __repr__(self) -> str:
        return f'StudentHook({type(self.hook).__name__})'


def _forward_stage(stage: str):

    def call(self, runner, **kwargs):
        return getattr(self.hook, stage)(StudentRunnerView(runner), **kwargs)

    call.__name__ = stage
    call.__doc__ = f'``hook.{stage}`` with the student as ``runner.model``.'
    return call


for _stage in Hook.stages:
    setattr(StudentHook, _stage, _forward_stage(_stage))
