"""Helpers shared by the mmkd_det hooks."""
from typing import Dict, Mapping

from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(runner) -> nn.Module:
    """``runner.model`` without its DDP/FSDP wrapper."""
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def logged_values(runner, outputs: Mapping) -> Dict[str, float]:
    """One training step's logged values (``outputs`` of ``after_train_iter``) as
    Python floats.

    :class:`~mmengine.hooks.RuntimeInfoHook` (priority ``VERY_HIGH``) has already
    copied each of them to the host into the message hub as ``train/<key>``; those
    copies are read, so a hook running after it adds no device synchronisation.
    A key missing there is converted here.

    Args:
        runner (Runner): the training runner.
        outputs (Mapping): the step's parsed ``log_vars`` (tensors or numbers).

    Returns:
        dict[str, float]: key -> value.
    """
    hub = runner.message_hub
    return {
        k: (hub.get_scalar(f'train/{k}').current() if f'train/{k}' in hub.log_scalars else
            float(v.detach() if hasattr(v, 'detach') else v))
        for k, v in outputs.items()
    }
