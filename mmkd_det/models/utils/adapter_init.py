"""Initialisation of the student-to-teacher adapter convolutions."""
from typing import Optional

from torch import nn


def init_adapters(adapters: nn.Module, std: Optional[float]) -> None:
    """Weights of every conv under ``adapters`` ~ N(0, std) truncated at 2 std (biases kept).

    DeFeat and FGFI initialise their adapters this way with std 1e-4 (the
    authors' ``weight.normal_().fmod_(2).mul_(1e-4)``; fmod wraps rather than
    redraws the tails: the same support and nearly the same spread).

    Args:
        adapters (nn.Module): e.g. a loss's ``adapters`` ModuleDict.
        std (float | None): the standard deviation; None keeps PyTorch's
            default initialisation.
    """
    if std is None:
        return
    for module in adapters.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
