"""The Distiller: a frozen teacher, a trainable student and config-selected losses."""
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from mmkd_det.registry import MODELS, build_checked, check_kwargs, type_suggestions
from ..recorders import ModuleOutputsRecorder, disable_inplace
from .calibration import build_calibration
from .data_preprocessor import DistillDataPreprocessor, same_preprocessing
from .records import (INPLACE_MODES, bind_loss_inputs, heads_to_run, probe_records,
                      split_record_sources)
from .schedule import DistillSchedule
from .teacher import (build_detector, fold_teacher_bn, freeze_teacher, inherit_teacher_weights,
                      teacher_forward)


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil a frozen teacher detector into a student detector.

    The teacher is kept out of the module tree (as mmdet's
    ``KnowledgeDistillationSingleStageDetector`` does): it is never in a
    checkpoint, the optimizer, DDP or the runner's ``init_weights``; it is
    frozen, always in eval mode and runs under ``no_grad``, computing only what
    the losses read (backbone + neck, plus a head forward when a head output
    is recorded; never its losses). Its construction (config lookup, loading,
    BatchNorm folding, weight inheritance, channels-last) is in
    :mod:`.teacher`; the warm-up / stop schedule is a :class:`DistillSchedule`
    driven by ``DistillationScheduleHook``; ``distill_ratio`` is logged by
    ``DistillDiagnosticsHook``.

    Host synchronisations in a training step: one, the combined non-finite
    check of all distillation loss terms (a ``bool`` of one device tensor); the
    schedule is plain Python. (The losses' own computations may add theirs.)

    Args:
        student (dict | str): mmdet model config, config path or
            ``dict(cfg_path=..., **overrides)`` (paths: see
            :mod:`.model_config`, e.g. ``'mmkd_det::retinanet/<file>.py'``).
        teacher (dict | str): same forms as ``student``.
        teacher_ckpt (str): path or URL of the teacher weights (required).
        distill_losses (dict): loss name (must contain ``'loss'``) -> loss cfg.
        recorders (dict): record name -> ``dict(source='neck', index=None,
            levels=None, teacher_source=None)``; the same sources are hooked in
            teacher and student unless ``teacher_source`` is given (see
            :class:`ModuleOutputsRecorder` for ``index`` and ``levels``).
        teacher_strict (bool): abort on missing/unexpected teacher keys.
            Defaults to True.
        warmup_iters (int): distillation weights ramp linearly as
            ``min(1, (iter + 1) / warmup_iters)``. Defaults to 0 (off).
        stop_epoch (int, optional): no distillation from this (0-based) epoch on.
            With either set, the progress comes from ``DistillationScheduleHook``
            (or :meth:`set_progress`); without it the step raises.
        probe_size (int): side of the zero image used at build time to check
            recorder shapes and create adapters. Defaults to 256.
        inherit_from_teacher (Sequence[str], optional): student sub-modules
            (e.g. ``('neck', 'bbox_head')``) initialised from the teacher's
            weights ("inheriting strategy" of FGD / MGD, whose headline numbers
            use it). Shapes must match. Applied at build and again after the
            runner's ``init_weights`` (a resumed checkpoint still wins).
            Defaults to None (off).
        fuse_teacher_bn (bool): fold the frozen teacher's eval-mode BatchNorm
            layers into the convolutions before them (mmcv ``fuse_conv_bn``;
            not in ``inherit_from_teacher`` modules). The same function up to
            float rounding, checked on a random image at build (a mismatch
            undoes it with a warning); saves the BN passes of every teacher
            forward. Defaults to True.
        teacher_channels_last (bool, optional): run the frozen teacher on a
            channels-last copy of its input (oneDNN's own layout) and hand the
            losses its records in the usual contiguous NCHW layout. Same values
            up to float rounding. On CPU the RetinaNet R101 + FPN teacher
            forward at 1333x800 (batch 2, 2 threads) measured 25 % faster
            (4793 -> 3580 ms) and the 128 px synthetic one 5-7 % faster
            (docs/benchmark.md); on CUDA it is unmeasured. None (default): on CPU inputs only.
        inplace_activations (str): the detectors' inplace activations
            (``ReLU(inplace=True)``, ...) would overwrite a record if one ran on
            a recorded module's output. ``'auto'`` (default): keep them (no
            extra copies) unless the build-time probe finds a record changed in
            place; then that detector's are disabled (logged). ``'disable'``:
            always disable them (each activation then allocates its output).
            ``'keep'``: never; a record changed in place is an error. In every
            mode a record changed in place after capture is refused when a loss
            reads it (:class:`RecordError`), never used silently.
        loss_calibration (dict, optional): ``dict(share, window=20, at_iter=None,
            per='loss', terms=None)``: each loss (``per='term'``: each listed term)
            times a factor, fixed once at ``at_iter`` (default
            ``warmup_iters``: the ramp is over, full calibrated strength), that
            makes its gradient ``share`` times the task loss's; no teacher before
            the window, terms applied (and logged) as 0 in it; factors in the
            checkpoint, logged as ``distill_factor.*`` (:mod:`.calibration`).
            Defaults to None (off: the ``loss_weight`` alone).

    A misspelled keyword (``warmup_iter=``), loss key (``loss_weigth=``) or
    ``type`` anywhere in the detectors or losses raises an error naming the
    closest valid names (:mod:`mmkd_det.registry` suggestion helpers).
    """

    def __init__(self,
                 student: Union[dict, str],
                 teacher: Union[dict, str],
                 teacher_ckpt: Optional[str],
                 distill_losses: dict,
                 recorders: dict,
                 teacher_strict: bool = True,
                 warmup_iters: int = 0,
                 stop_epoch: Optional[int] = None,
                 probe_size: int = 256,
                 inherit_from_teacher: Optional[Sequence[str]] = None,
                 fuse_teacher_bn: bool = True,
                 teacher_channels_last: Optional[bool] = None,
                 inplace_activations: str = 'auto',
                 loss_calibration: Optional[dict] = None,
                 data_preprocessor=None,
                 init_cfg=None,
                 **unknown):
        if unknown:
            # a misspelled key: name it and the closest valid ones, not a bare TypeError
            check_kwargs(type(self), unknown, 'model (Distiller)')
        with type_suggestions('student'):
            student_model = build_detector(student, 'student')
        with type_suggestions('teacher'):
            teacher_model = build_detector(teacher, 'teacher')
        t_pp = None if same_preprocessing(teacher_model.data_preprocessor,
                                          student_model.data_preprocessor) \
            else teacher_model.data_preprocessor
        super().__init__(
            data_preprocessor=DistillDataPreprocessor(student_model.data_preprocessor, t_pp),
            init_cfg=init_cfg)
        self.student = student_model
        # Plain attribute, not a sub-module (see class docstring).
        object.__setattr__(self, 'teacher', teacher_model)
        freeze_teacher(self.teacher, teacher_ckpt, strict=teacher_strict)
        if inplace_activations not in INPLACE_MODES:
            raise ValueError(f'inplace_activations must be one of {INPLACE_MODES}, got '
                             f'{inplace_activations!r}.')
        self.inplace_activations = inplace_activations
        if inplace_activations == 'disable':
            disable_inplace(self.teacher)
            disable_inplace(self.student)

        self.inherit_from_teacher = tuple(inherit_from_teacher or ())
        inherit_teacher_weights(self.student, self.teacher, self.inherit_from_teacher)
        if fuse_teacher_bn:
            fold_teacher_bn(self.teacher, probe_size, skip=self.inherit_from_teacher)
        if teacher_channels_last not in (None, True, False):
            raise TypeError('teacher_channels_last must be None (on CPU only), True or '
                            f'False, got {teacher_channels_last!r}.')
        self.teacher_channels_last = teacher_channels_last
        self.schedule = DistillSchedule(warmup_iters, stop_epoch)
        self.record_specs = {k: dict(v) for k, v in recorders.items()}
        s_sources, t_sources = split_record_sources(self.record_specs)
        self.student_recorder = ModuleOutputsRecorder(self.student, s_sources, 'student')
        self.teacher_recorder = ModuleOutputsRecorder(self.teacher, t_sources, 'teacher')
        self.teacher_heads = heads_to_run(t_sources, 'teacher')
        self.student_heads = heads_to_run(s_sources, 'student')

        self.distill_losses = nn.ModuleDict()
        self.loss_bindings: Dict[str, Dict[str, tuple]] = {}
        with DefaultScope.overwrite_default_scope('mmkd_det'):
            for name, cfg in distill_losses.items():
                if 'loss' not in name:
                    raise KeyError(f'Distillation loss name {name!r} must contain "loss" '
                                   f'(mmengine only back-propagates keys containing it).')
                self.distill_losses[name] = build_checked(MODELS, cfg, f'distill_losses[{name!r}]')
                self.loss_bindings[name] = bind_loss_inputs(name, self.distill_losses[name],
                                                            self.record_specs)
        self._setup_losses(probe_size)
        self.loss_calibration = build_calibration(loss_calibration, self.distill_losses,
                                                  warmup_iters)

    # ----------------------------------------------------------------- build
    def init_weights(self) -> None:
        super().init_weights()
        # the runner's init must not undo inheritance
        inherit_teacher_weights(self.student, self.teacher, self.inherit_from_teacher)

    def _setup_losses(self, probe_size: int) -> None:
        """Probe both detectors' record shapes; let each loss build its adapters."""
        shapes = dict(
            student=probe_records(self.student, self.student_recorder, self.student_heads,
                                  probe_size, self.inplace_activations, 'student'),
            teacher=probe_records(self.teacher, self.teacher_recorder, self.teacher_heads,
                                  probe_size, self.inplace_activations, 'teacher'))
        for name, loss in self.distill_losses.items():
            arg_shapes = {
                arg: shapes[b[1]][b[2]]
                for arg, b in self.loss_bindings[name].items() if b[0] == 'record'
            }
            if hasattr(loss, 'setup'):
                loss.setup(arg_shapes, name=name)

    @property
    def strides(self) -> Optional[List[int]]:
        """Strides of the student's dense head levels (None if it has none)."""
        head = getattr(self.student, 'bbox_head', None) or getattr(self.student, 'rpn_head', None)
        gen = getattr(head, 'prior_generator', None)
        strides = getattr(gen, 'strides', None) or getattr(head, 'strides', None)
        return [s[0] if isinstance(s, (tuple, list)) else int(s) for s in strides] \
            if strides else None

    # ------------------------------------------------------------- schedule
    def set_progress(self, iter: int, epoch: int = 0) -> None:
        """Set the training progress the schedule reads (``DistillationScheduleHook``
        does this before every training iteration)."""
        self.schedule.set_progress(iter, epoch)

    def distill_scale(self) -> float:
        """Current factor of every distillation loss (warm-up, stop epoch)."""
        return self.schedule.factor()

    def calibration_factors_dict(self) -> Dict[str, Optional[float]]:
        """``{loss name: calibration factor}`` (None: not calibrated, or off)."""
        calibration = self.loss_calibration
        return calibration.factors_dict() if calibration else dict.fromkeys(self.distill_losses)

    # --------------------------------------------------------------- forward
    def forward(self,
                inputs,
                data_samples=None,
                mode: str = 'tensor',
                teacher_inputs: Optional[torch.Tensor] = None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs)
        return self.student(inputs, data_samples, mode)

    def _teacher_forward(self, inputs: torch.Tensor) -> None:
        """The teacher's recorded forward (see :func:`.teacher.teacher_forward`)."""
        teacher_forward(self.teacher, self.teacher_recorder, self.teacher_heads, inputs,
                        self.teacher_channels_last)

    def _loss_kwargs(self, name: str, data_samples) -> dict:
        """Arguments of loss ``name`` from the current records and extras."""
        records = dict(student=self.student_recorder, teacher=self.teacher_recorder)
        extras = dict(
            gt_instances=[s.gt_instances for s in data_samples],
            batch_img_metas=[s.metainfo for s in data_samples],
            strides=self.strides,
            student=self.student,
            teacher=self.teacher)
        return {
            arg: (records[b[1]].get(b[2]) if b[0] == 'record' else extras[b[1]])
            for arg, b in self.loss_bindings[name].items()
        }

    def record_step(self, inputs, data_samples, teacher_inputs=None) -> dict:
        """The teacher forward, then the student's task losses, both recorded;
        returns the task losses (the records stay until the next step)."""
        # teacher first: its activations are freed before the student's exist (a
        # lower peak than student-then-teacher), only its records stay
        self._teacher_forward(inputs if teacher_inputs is None else teacher_inputs)
        with self.student_recorder, ExitStack() as contexts:
            # a loss may watch the student's task loss (LD reuses its assignment)
            for loss in self.distill_losses.values():
                if hasattr(loss, 'student_context'):
                    contexts.enter_context(loss.student_context(self.student))
            return self.student.loss(inputs, data_samples)

    def loss(self, inputs, data_samples, teacher_inputs=None) -> dict:
        scale, calibration, it = self.distill_scale(), self.loss_calibration, self.schedule.iter
        if scale == 0.0 or (calibration and not calibration.active(it)):
            losses = self.student.loss(inputs, data_samples)
            # keep every trainable parameter in the graph (DDP without
            # find_unused_parameters) at zero cost
            extra = [p.sum() * 0 for p in self.distill_losses.parameters()]
            if extra:
                losses['distill.loss_stopped'] = torch.stack(extra).sum()
            return losses
        losses = self.record_step(inputs, data_samples, teacher_inputs)
        terms = {}  # loss name -> {logged key: term}
        for name, loss in self.distill_losses.items():
            value = loss(**self._loss_kwargs(name, data_samples))
            # a loss may return its terms (each logged, all summed by the runner)
            terms[name] = {f'{name}.{k}': v for k, v in value.items()} \
                if isinstance(value, dict) else {name: value}
        self._check_finite({k: v for named in terms.values() for k, v in named.items()})
        weights = dict.fromkeys(terms, scale)
        if calibration:  # 0 while it measures, then the fixed factors
            factors = calibration.factors_now(it, terms, lambda: self.parse_losses(losses)[0],
                                              self.student)
            weights = {name: scale * factors[name] for name in terms}
        for name, named in terms.items():
            losses.update({f'distill.{k}': v * weights[name] for k, v in named.items()})
        losses.update(calibration.log_vars() if calibration else {})
        # drop the references now: teacher tensors need not live through backward
        self.student_recorder.reset()
        self.teacher_recorder.reset()
        return losses

    def _check_finite(self, terms: Dict[str, torch.Tensor]) -> None:
        """Raise if any distillation term is NaN/inf: one host sync for all terms."""
        if not terms or bool(torch.stack([torch.isfinite(t).all() for t in terms.values()]).all()):
            return
        bad = {
            k: (t.item() if t.numel() == 1 else 'non-finite')
            for k, t in terms.items() if not torch.isfinite(t).all()
        }
        at = '' if self.schedule.iter is None else f' at iteration {self.schedule.iter}'
        raise FloatingPointError(
            f'Distillation loss {", ".join(f"{k} is {v}" for k, v in bad.items())}{at}. Check '
            f'that the teacher checkpoint matches the teacher config and both use the same '
            f'preprocessing; otherwise lower its loss_weight, raise warmup_iters or add '
            f'optim_wrapper.clip_grad.')

    # ---------------------------------------------------------------- teacher
    @torch.no_grad()
    def teacher_predict_step(self, data: dict) -> list:
        """Teacher predictions for a raw val batch (its own preprocessing)."""
        t_pp = self.data_preprocessor.teacher or self.data_preprocessor.student
        data = t_pp(data, False)
        return self.teacher.predict(data['inputs'], data['data_samples'])

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.cpu()/.half() must reach the unregistered teacher too.
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)
