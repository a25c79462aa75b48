"""The losses' weighting maps on one batch (for the mask visualisation tool)."""
from typing import Dict, Optional

import torch

from .teacher import record_forward


@torch.no_grad()
def loss_visual_maps(distiller,
                     inputs: torch.Tensor,
                     data_samples: list,
                     teacher_inputs: Optional[torch.Tensor] = None) -> Dict[str, dict]:
    """Per distillation loss that defines ``visual_maps``: its named per-level
    (N, H, W) weighting maps on this batch.

    The student runs its backbone, neck and recorded heads in its current mode,
    the teacher as in training; the records are dropped afterwards.

    Args:
        distiller (Distiller): the model.
        inputs (Tensor): the preprocessed batch.
        data_samples (list[DetDataSample]): its samples (ground truth, metas).
        teacher_inputs (Tensor, optional): the teacher's own preprocessed batch
            (when its preprocessing differs from the student's).

    Returns:
        dict: loss name -> the loss's ``visual_maps`` dict.
    """
    d = distiller
    record_forward(d.student, d.student_recorder, d.student_heads, inputs)
    d._teacher_forward(inputs, teacher_inputs)
    maps = {
        name: loss.visual_maps(**d._loss_kwargs(name, data_samples))
        for name, loss in d.distill_losses.items() if hasattr(loss, 'visual_maps')
    }
    d.reset_records()
    return maps
