"""Preprocess a batch for the student and, when theirs differs, for each teacher."""
from typing import Dict, Optional

import torch
from mmengine.model import BaseDataPreprocessor
from torch import nn

from mmkd_det.registry import MODELS


def same_preprocessing(a: BaseDataPreprocessor, b: BaseDataPreprocessor) -> bool:
    """True if ``a`` and ``b`` turn a batch into the same tensor, batch augments
    aside (a teacher always sees the student's augmented batch; see
    :class:`DistillDataPreprocessor`)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    for attr in ('_enable_normalize', '_channel_conversion', 'pad_size_divisor', 'pad_value',
                 'bgr_to_rgb', 'rgb_to_bgr'):
        if getattr(a, attr, None) != getattr(b, attr, None):
            return False
    for attr in ('mean', 'std'):
        ta, tb = getattr(a, attr, None), getattr(b, attr, None)
        if (ta is None) != (tb is None):
            return False
        if ta is not None and not torch.equal(ta.cpu(), tb.cpu()):
            return False
    return True


def teacher_preprocessors(
        student: BaseDataPreprocessor,
        teachers: Dict[str, BaseDataPreprocessor]) -> Dict[str, BaseDataPreprocessor]:
    """The teachers whose preprocessing differs from the student's, name -> preprocessor
    without batch augments (the others reuse the student's tensor).

    Batch augments (YOLOX's ``BatchSyncRandomResize``, ...) change the batch's
    geometry at random; teacher and student must see the same one, so only the
    student's run, once. A teacher with another normalisation cannot be given
    that batch: it is an error while the student has batch augments.

    Raises:
        ValueError: a teacher normalises differently and the student's
            preprocessor has batch augments.
    """
    out = {}
    augments = getattr(student, 'batch_augments', None)
    for name, pp in teachers.items():
        if same_preprocessing(pp, student):
            continue
        if augments:
            raise ValueError(
                f'The {name} normalises images differently from the student (mean/std, channel '
                f'order or padding of its data_preprocessor), and the student\'s '
                f'data_preprocessor has batch_augments ({[type(a).__name__ for a in augments]}) '
                f'that resize each batch at random: the {name} would see another geometry. Give '
                f'the student the {name}\'s mean/std/bgr_to_rgb, or remove the batch_augments.')
        if getattr(pp, 'batch_augments', None) is not None:
            pp.batch_augments = None
        out[name] = pp
    return out


@MODELS.register_module()
class DistillDataPreprocessor(BaseDataPreprocessor):
    """Student preprocessing, plus ``teacher_inputs`` for teachers whose differs.

    Teachers trained with another mean/std or channel order (caffe-style
    backbones) get their own normalisation; padding must give the same batch
    shape for feature losses to line up. Batch augments run for the student
    only (:func:`teacher_preprocessors`).

    Args:
        student (BaseDataPreprocessor): the student's preprocessor.
        teacher (BaseDataPreprocessor, optional): the single teacher's, or None
            when it is the same as the student's (then the teacher reuses the
            student's tensor, at no cost). ``teacher_inputs`` is then a tensor.
        teachers (dict, optional): name -> preprocessor of the teachers (of
            several) whose preprocessing differs; ``teacher_inputs`` is then a
            dict name -> tensor (missing names reuse the student's tensor).
    """

    def __init__(self,
                 student: BaseDataPreprocessor,
                 teacher: Optional[BaseDataPreprocessor] = None,
                 teachers: Optional[Dict[str, BaseDataPreprocessor]] = None):
        super().__init__()
        if teacher is not None and teachers:
            raise ValueError('DistillDataPreprocessor takes teacher= or teachers=, not both.')
        self.student = student
        self.teacher = teacher
        self.teachers = nn.ModuleDict(teachers or {})

    def forward(self, data: dict, training: bool = False) -> dict:
        out = self.student(data, training)
        if training and self.teacher is not None:
            out['teacher_inputs'] = self.teacher(data, training)['inputs']
        elif training and len(self.teachers):
            out['teacher_inputs'] = {
                name: pp(data, training)['inputs']
                for name, pp in self.teachers.items()
            }
        return out

    def teacher_of(self, name: str) -> BaseDataPreprocessor:
        """The preprocessor of teacher ``name`` (the student's when it is the same)."""
        if self.teacher is not None:
            return self.teacher
        return self.teachers[name] if name in self.teachers else self.student
