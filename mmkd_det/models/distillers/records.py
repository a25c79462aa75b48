"""What the Distiller records and hands to each loss: the teacher's and student's
record sources, the heads to run, the recorded shapes and the losses' arguments."""
import inspect
import logging
from typing import Collection, Dict, List, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from ..recorders import ModuleOutputsRecorder, disable_inplace
from .teacher import record_forward

#: keyword arguments a loss may request by name, provided by the Distiller.
EXTRA_INPUTS = ('gt_instances', 'batch_img_metas', 'strides', 'student', 'teacher')
#: top-level detector attributes whose forward(feats) the Distiller can run.
RUNNABLE_HEADS = ('bbox_head', 'rpn_head')
INPLACE_MODES = ('auto', 'keep', 'disable')


def split_record_sources(recorders: Dict[str, dict]) -> Tuple[dict, dict]:
    """The student's and the teacher's recorder specs from the Distiller's
    ``recorders``: the teacher uses ``teacher_source`` where one is given and
    ``teacher_levels`` where one is given (its level indices, paired in order
    with the student's ``levels``; by default the same as ``levels``).

    Raises:
        ValueError: a ``levels`` / ``teacher_levels`` that is not a list of ints,
            or the two lists of different lengths (both are named; see
            :func:`check_level_lists`).
    """
    student, teacher = {}, {}
    for name, spec in recorders.items():
        student[name] = {k: v for k, v in spec.items() if k not in TEACHER_ONLY_KEYS}
        levels = spec.get('levels')
        teacher_levels = spec.get('teacher_levels')
        # per-teacher form dict(<teacher>=[...]) (see specs_for_teacher): check each
        for one in (teacher_levels.values()
                    if isinstance(teacher_levels, dict) else [teacher_levels]):
            check_level_lists(name, levels, one)
        if isinstance(teacher_levels, (list, tuple)):
            teacher_levels = list(teacher_levels)
        teacher[name] = dict(
            source=spec.get('teacher_source') or spec['source'],
            index=spec.get('index'),
            levels=levels if teacher_levels is None else teacher_levels)
    return student, teacher


def specs_for_teacher(recorders: Dict[str, dict], teacher: str) -> Dict[str, dict]:
    """``recorders`` as seen by teacher ``teacher``: a ``teacher_*`` key given as a
    dict (teacher name -> value, e.g. ``teacher_source=dict(swin='neck',
    frcnn='neck')``) takes that teacher's value (absent: the default)."""
    return {
        name: {
            k: (v.get(teacher) if k.startswith('teacher_') and isinstance(v, dict) else v)
            for k, v in spec.items()
        }
        for name, spec in recorders.items()
    }


def heads_to_run(sources: Dict[str, dict], role: str) -> List[str]:
    """The heads of :data:`RUNNABLE_HEADS` a recorded forward must run for ``sources``."""
    heads = []
    for name, spec in sources.items():
        top = spec['source'].split('.')[0]
        if top in ('backbone', 'neck'):
            continue
        if top not in RUNNABLE_HEADS:
            raise ValueError(
                f'Recorder {name!r}: the {role} can only be recorded in backbone, neck, '
                f'{" or ".join(RUNNABLE_HEADS)} (got {spec["source"]!r}); RoI heads need '
                f'proposals and are not run for the teacher.')
        if top not in heads:
            heads.append(top)
    return heads


@torch.no_grad()
def probe_records(model: nn.Module, recorder: ModuleOutputsRecorder, heads: List[str], size: int,
                  inplace_activations: str, role: str) -> Dict[str, list]:
    """Shapes of every record of ``model`` on a zero ``size`` x ``size`` image, in
    eval mode; checks no record is changed in place after capture (in
    ``inplace_activations='auto'`` mode by disabling the model's inplace
    activations when one is).

    Returns:
        dict: record name -> list of per-level shapes.
    """
    was_training = model.training
    model.eval()
    try:
        record_forward(model, recorder, heads, torch.zeros(1, 3, size, size))
        modified = recorder.modified()
        if modified and inplace_activations == 'auto':
            count = disable_inplace(model)
            print_log(
                f'inplace_activations=auto: the {role}\'s inplace operations change '
                f'records {modified} in place; disabled its {count} inplace '
                f'activations.',
                logger='current',
                level=logging.INFO)
            record_forward(model, recorder, heads, torch.zeros(1, 3, size, size))
            modified = recorder.modified()
        if modified:
            fix = ('Set inplace_activations=\'auto\' or \'disable\'.'
                   if inplace_activations == 'keep' else
                   'A non-activation inplace operation (e.g. a residual `+=`) follows the '
                   'recorded module: record another module (e.g. the whole block).')
            raise ValueError(
                f'Records {modified} of the {role} are changed in place after they are '
                f'recorded (inplace_activations={inplace_activations!r}), so the '
                f'losses would read overwritten values. {fix}')
        return {n: [t.shape for t in recorder.get(n)] for n in recorder.specs}
    finally:
        recorder.reset()
        model.train(was_training)


def bind_loss_inputs(name: str,
                     loss: nn.Module,
                     records: Collection[str],
                     teachers: Sequence[str] = ('teacher', )) -> dict:
    """Where each argument of ``loss.forward`` comes from.

    An argument named in ``loss.inputs`` (``dict(arg='student.<record>')`` or
    ``'<teacher>.<record>'``, the single teacher being ``'teacher'``) reads that
    record; one named in :data:`EXTRA_INPUTS` gets that extra input; others keep
    their defaults.

    Args:
        name (str): the loss's key in ``distill_losses`` (for messages).
        loss (nn.Module): the built loss.
        records (Collection[str]): the Distiller's record names.
        teachers (Sequence[str]): the teachers' names.

    Returns:
        dict: argument -> ``('record', role, record)`` or ``('extra', name)``.
    """
    params = inspect.signature(loss.forward).parameters
    inputs = getattr(loss, 'inputs', {})
    unknown = set(inputs) - set(params)
    if unknown:
        raise KeyError(f'{name}: `inputs` names {sorted(unknown)} which '
                       f'{type(loss).__name__}.forward does not take '
                       f'(it takes {list(params)}).')
    binding = {}
    for arg, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if arg in inputs:
            role, _, record = inputs[arg].partition('.')
            if role not in ('student', *teachers) or record not in records:
                roles = ' or '.join(f'"{r}.<record>"' for r in ('student', *teachers))
                raise KeyError(f'{name}: input {arg}={inputs[arg]!r} must be {roles} with a '
                               f'record among {sorted(records)}. Add the record to the '
                               f'Distiller `recorders`, or name one of the teachers '
                               f'{list(teachers)}.')
            binding[arg] = ('record', role, record)
        elif arg in EXTRA_INPUTS:
            binding[arg] = ('extra', arg)
        elif p.default is p.empty:
            raise KeyError(f'{name}: argument {arg!r} of {type(loss).__name__}.forward '
                           f'is not bound; set inputs=dict({arg}="student.<record>").')
    return binding


#: recorder keys that only concern the teacher (never passed to the student's recorder).
TEACHER_ONLY_KEYS = ('teacher_source', 'teacher_levels')


def check_level_lists(name: str, levels, teacher_levels) -> None:
    """Check a recorder's ``levels`` and ``teacher_levels`` before anything is built.

    Each must be None or a list / tuple of ints; when both are lists they must
    have the same length, since ``teacher_levels[i]`` is the teacher level
    compared with the student's ``levels[i]``. Whether the indices exist in the
    recorded module's outputs is checked at the build-time probe.

    Args:
        name (str): the recorder's name (for messages).
        levels: the student's level indices, or None (all).
        teacher_levels: the teacher's level indices, or None (same as ``levels``).

    Raises:
        ValueError: naming both lists and the fix.
    """
    for key, value in (('levels', levels), ('teacher_levels', teacher_levels)):
        if value is None:
            continue
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or \
                not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f'Recorder {name!r}: {key} must be a non-empty list of level '
                             f'indices (ints) into the recorded module\'s outputs, e.g. '
                             f'[0, 1, 2, 3], or None for all; got {value!r}.')
    if levels is not None and teacher_levels is not None and len(levels) != len(teacher_levels):
        raise ValueError(
            f'Recorder {name!r}: levels={list(levels)} ({len(levels)} student levels) and '
            f'teacher_levels={list(teacher_levels)} ({len(teacher_levels)} teacher levels) '
            f'must pair one teacher level with each student level, in order: give both '
            f'lists the same length (e.g. a Faster R-CNN teacher with P2-P6 and a '
            f'RetinaNet student with P3-P7: levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4]).')
