"""The frozen teacher: build and load it, share its weights with the student,
fold its BatchNorm layers and run it (channels-last on request) under recorders.

The :class:`~mmkd_det.models.distillers.Distiller` calls these at build time and,
for :func:`teacher_forward`, once per training step.
"""
import copy
import logging
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from torch import nn

from mmkd_det.registry import MODELS, type_suggestions
from ..recorders import ModuleOutputsRecorder
from .model_config import load_model_cfg
from .teacher_loading import load_teacher_checkpoint

#: largest |fused - unfused| / max|unfused| per teacher feature level accepted
#: by :func:`fold_teacher_bn`.
FUSE_TOLERANCE = 1e-4


def build_detector(cfg: Union[dict, str], role: str) -> nn.Module:
    """Build the ``role`` ('teacher' / 'student') detector of ``cfg`` (any form
    :func:`load_model_cfg` accepts) under the ``mmkd_det`` scope, which nested
    mmdet/mmengine builds (data preprocessors, heads) need whatever scope the
    caller runs under."""
    model_cfg = load_model_cfg(cfg, role)
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        return MODELS.build(model_cfg)


#: keys of one entry of the Distiller's ``teachers``
TEACHER_KEYS = ('model', 'ckpt', 'strict')
#: the name of the teacher in the single-teacher form (``teacher=``, ``teacher_ckpt=``)
SINGLE_TEACHER = 'teacher'


def teacher_specs(teacher: Union[dict, str, None], teacher_ckpt: Optional[str], strict: bool,
                  teachers: Optional[Dict[str, dict]]) -> Dict[str, dict]:
    """The Distiller's teachers as ``{name: dict(model, ckpt, strict)}``.

    The single-teacher form (``teacher=cfg, teacher_ckpt=path``) is the teacher
    named ``'teacher'``; ``teachers=dict(name=dict(model=cfg, ckpt=path,
    strict=True))`` names several. A loss reads a teacher's records as
    ``'<name>.<record>'``.

    Raises:
        ValueError: both forms or neither, a bad name or an entry without
            ``model`` / ``ckpt`` or with an unknown key.
    """
    if teachers is None:
        if teacher is None:
            raise ValueError('Distiller needs a teacher: teacher=<detector config> with '
                             'teacher_ckpt=<weights>, or teachers=dict(<name>=dict(model=..., '
                             'ckpt=...)).')
        return {SINGLE_TEACHER: dict(model=teacher, ckpt=teacher_ckpt, strict=strict)}
    if teacher is not None or teacher_ckpt is not None:
        raise ValueError('Give either teacher= / teacher_ckpt= (one teacher) or teachers=dict('
                         '...) (several), not both.')
    if not isinstance(teachers, dict) or not teachers:
        raise ValueError(f'teachers must be a non-empty dict name -> dict(model=..., ckpt=...), '
                         f'got {teachers!r}.')
    specs = {}
    for name, spec in teachers.items():
        if not (isinstance(name, str) and name.isidentifier()) or name == 'student':
            raise ValueError(f'teachers: name {name!r} must be a Python identifier other than '
                             f'"student" (losses read "<name>.<record>").')
        if not isinstance(spec, dict) or 'model' not in spec or 'ckpt' not in spec:
            raise ValueError(f'teachers[{name!r}] must be dict(model=<detector config>, '
                             f'ckpt=<weights>[, strict=True]), got {spec!r}.')
        unknown = sorted(set(spec) - set(TEACHER_KEYS))
        if unknown:
            raise ValueError(f'teachers[{name!r}]: unknown keys {unknown}; an entry takes '
                             f'{list(TEACHER_KEYS)}.')
        specs[name] = dict(
            model=spec['model'], ckpt=spec['ckpt'], strict=spec.get('strict', strict))
    return specs


def build_teachers(specs: Dict[str, dict]) -> Dict[str, nn.Module]:
    """Build, load and freeze every teacher of :func:`teacher_specs`'s ``specs``."""
    teachers = {}
    for name, spec in specs.items():
        with type_suggestions(name):
            teachers[name] = build_detector(spec['model'], name)
        freeze_teacher(teachers[name], spec['ckpt'], strict=spec['strict'])
    return teachers


def freeze_teacher(teacher: nn.Module, ckpt: Optional[str], strict: bool = True) -> None:
    """Load ``ckpt`` into ``teacher`` (see :func:`load_teacher_checkpoint`), stop
    its gradients and put it in eval mode."""
    load_teacher_checkpoint(teacher, ckpt, strict=strict)
    teacher.requires_grad_(False)
    teacher.eval()


def inherit_teacher_weights(student: nn.Module, teacher: nn.Module,
                            prefixes: Sequence[str]) -> None:
    """Copy the teacher's sub-modules ``prefixes`` (e.g. ``('neck', 'bbox_head')``)
    into the student ("inheriting strategy" of FGD / MGD).

    Raises:
        KeyError: a prefix is not a sub-module of both detectors.
        ValueError: the two sub-modules differ in keys or shapes.
    """
    for prefix in prefixes:
        try:
            s_mod, t_mod = student, teacher
            for n in prefix.split('.'):
                s_mod, t_mod = getattr(s_mod, n), getattr(t_mod, n)
        except AttributeError:
            raise KeyError(f'inherit_from_teacher: {prefix!r} is not a sub-module of both '
                           f'detectors (e.g. neck, bbox_head, rpn_head, roi_head).') from None
        s_state, t_state = s_mod.state_dict(), t_mod.state_dict()
        bad = sorted(k for k in s_state if k not in t_state or t_state[k].shape != s_state[k].shape)
        if bad or set(t_state) != set(s_state):
            raise ValueError(
                f'inherit_from_teacher: student {prefix} cannot take the teacher\'s weights '
                f'(missing or different shapes: {bad[:5]}{"..." if len(bad) > 5 else ""}). '
                f'Inheritance needs the same {prefix} architecture and widths; remove '
                f'{prefix!r} from inherit_from_teacher.')
        s_mod.load_state_dict(t_state)


def fold_teacher_bn(teacher: nn.Module,
                    size: int,
                    skip: Sequence[str] = (),
                    recorded: Sequence[str] = ()) -> bool:
    """Fold the teacher's eval-mode BatchNorm layers into the convolutions before
    them (as mmcv ``fuse_conv_bn``), except in the top-level children ``skip`` and
    after a recorded convolution (``recorded``: dotted module paths; folding would
    make its record the BatchNorm's output).

    The features of a random ``size`` x ``size`` image are compared before and
    after; a relative change above :data:`FUSE_TOLERANCE` on any level undoes the
    folding with a warning.

    Returns:
        bool: whether the teacher is now folded.
    """
    modules = dict(teacher.named_modules())
    keep = {
        id(modules[p.rpartition('.')[0]])
        for p in recorded if isinstance(modules.get(p), nn.Conv2d) and '.' in p
    }
    children = [
        m for n, m in teacher.named_children() if n not in skip and n != 'data_preprocessor'
    ]
    if not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for c in children for m in c.modules()):
        return False
    probe = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    original = {id(c): copy.deepcopy(c) for c in children}
    with torch.no_grad():
        before = teacher.extract_feat(probe)
        for child in children:
            _fuse_conv_bn_except(child, keep)
        teacher.requires_grad_(False)
        after = teacher.extract_feat(probe)
    errors = [((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
              for a, b in zip(after, before)]
    if max(errors) <= FUSE_TOLERANCE:
        return True
    for name, child in list(teacher.named_children()):
        if id(child) in original:
            setattr(teacher, name, original[id(child)])
    print_log(
        f'fuse_teacher_bn: folding the teacher\'s BatchNorm into its convolutions '
        f'changed its features (relative error {max(errors):.2g}); kept the '
        f'unfused teacher. Set fuse_teacher_bn=False to skip the attempt.',
        logger='current',
        level=logging.WARNING)
    return False


def _fuse_conv_bn_except(module: nn.Module, keep: set) -> None:
    """mmcv's ``fuse_conv_bn`` (a BN right after a conv among a module's children is
    folded into it and becomes ``Identity``), skipping the modules in ``keep`` (ids)."""
    from mmcv.cnn.utils.fuse_conv_bn import _fuse_conv_bn
    last_conv = last_name = None
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            if last_conv is not None and id(module) not in keep:
                module._modules[last_name] = _fuse_conv_bn(last_conv, child)
                module._modules[name] = nn.Identity()
            last_conv = None
        elif isinstance(child, nn.Conv2d):
            last_conv, last_name = child, name
        else:
            _fuse_conv_bn_except(child, keep)


def record_forward(model: nn.Module, recorder: ModuleOutputsRecorder, heads: Sequence[str],
                   inputs: torch.Tensor) -> None:
    """Backbone, neck and the ``heads`` (e.g. ``['bbox_head']``) of ``model`` on
    ``inputs`` with ``recorder`` active (teacher and student alike)."""
    with recorder:
        feats = model.extract_feat(inputs)
        for head in heads:
            getattr(model, head)(feats)


def teacher_forward(teacher: nn.Module,
                    recorder: ModuleOutputsRecorder,
                    heads: Sequence[str],
                    inputs: torch.Tensor,
                    channels_last: Optional[bool] = None,
                    labeler=None,
                    data_samples=None) -> None:
    """:func:`record_forward` of the teacher under ``no_grad``.

    Args:
        channels_last (bool, optional): run on a channels-last copy of
            ``inputs`` and leave the records contiguous (NCHW) for the losses;
            None: on CPU inputs only.
        labeler (PseudoLabeler, optional): record the teacher's ``predict`` pass
            instead, which also writes its detections as the ground truth of
            ``data_samples`` (:mod:`.labels`): records and labels in one forward.
    """
    if channels_last is None:
        channels_last = inputs.device.type == 'cpu'
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        if labeler is None:
            record_forward(teacher, recorder, heads, inputs)
        else:
            with recorder:
                labeler.label(teacher, inputs, data_samples)
    if channels_last:
        recorder.make_contiguous()
