"""Preprocess a batch for the student and, when it differs, for the teacher."""
from typing import Optional

import torch
from mmengine.model import BaseDataPreprocessor

from mmkd_det.registry import MODELS


def same_preprocessing(a: BaseDataPreprocessor, b: BaseDataPreprocessor) -> bool:
    """True if ``a`` and ``b`` turn a batch into the same tensor."""
    if type(a) is not type(b):
        return False
    for attr in ('_enable_normalize', '_channel_conversion', 'pad_size_divisor', 'pad_value',
                 'bgr_to_rgb', 'rgb_to_bgr'):
        if getattr(a, attr, None) != getattr(b, attr, None):
            return False
    if getattr(a, 'batch_augments', None) is not None or \
            getattr(b, 'batch_augments', None) is not None:
        return a is b
    for attr in ('mean', 'std'):
        ta, tb = getattr(a, attr, None), getattr(b, attr, None)
        if (ta is None) != (tb is None):
            return False
        if ta is not None and not torch.equal(ta.cpu(), tb.cpu()):
            return False
    return True


@MODELS.register_module()
class DistillDataPreprocessor(BaseDataPreprocessor):
    """Student preprocessing, plus ``teacher_inputs`` when the teacher differs.

    Teachers trained with another mean/std or channel order (caffe-style
    backbones) get their own normalisation; padding must give the same batch
    shape for feature losses to line up.

    Args:
        student (BaseDataPreprocessor): the student's preprocessor.
        teacher (BaseDataPreprocessor, optional): the teacher's, or None when it
            is the same as the student's (then the teacher reuses the student's
            tensor, at no cost).
    """

    def __init__(self,
                 student: BaseDataPreprocessor,
                 teacher: Optional[BaseDataPreprocessor] = None):
        super().__init__()
        self.student = student
        self.teacher = teacher

    def forward(self, data: dict, training: bool = False) -> dict:
        out = self.student(data, training)
        if training and self.teacher is not None:
            out['teacher_inputs'] = self.teacher(data, training)['inputs']
        return out
