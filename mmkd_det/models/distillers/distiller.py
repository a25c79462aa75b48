"""The Distiller: a frozen teacher, a trainable student and config-selected losses."""
import copy
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from mmkd_det.registry import MODELS, build_checked, check_kwargs, type_suggestions
from ..recorders import ModuleOutputsRecorder, RecordError, disable_inplace
from .calibration import build_calibration
from .data_preprocessor import DistillDataPreprocessor, teacher_preprocessors
from .labels import build_labels, check_annotated, needs_gt
from .records import (INPLACE_MODES, bind_loss_inputs, heads_to_run, probe_records,
                      specs_for_teacher, split_record_sources)
from .schedule import DistillSchedule
from .teacher import (SINGLE_TEACHER, build_detector, build_teachers, fold_teacher_bn,
                      inherit_teacher_weights, record_forward, teacher_forward, teacher_specs)


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
        teacher (dict | str, optional): same forms as ``student``.
        teacher_ckpt (str, optional): path or URL of the teacher weights.
        teachers (dict, optional): several teachers instead of ``teacher`` /
            ``teacher_ckpt``: ``dict(<name>=dict(model=<cfg>, ckpt=<weights>,
            strict=True))``. Each is frozen, outside checkpoints, with its own
            weights, preprocessing (its ``data_preprocessor``) and records; a
            loss reads ``'<name>.<record>'`` (the single teacher is ``'teacher'``);
            a recorder's ``teacher_*`` keys may be dicts by teacher name.
            ``inherit_from_teacher`` copies from the first.
        distill_losses (dict): loss name (must contain ``'loss'``) -> loss cfg.
        recorders (dict): record name -> ``dict(source='neck', index=None,
            levels=None, teacher_source=None)``; the same sources are hooked in
            teacher and student unless ``teacher_source`` is given (see
            :class:`ModuleOutputsRecorder` for ``index`` and ``levels``).
        teacher_strict (bool): abort on missing/unexpected teacher keys.
            Defaults to True.
        labels (str): the student's ground truth (:mod:`.labels`): ``'gt'``
            (default) the dataset's; ``'pseudo'`` the teacher's detections
            (``pseudo_labels=dict(teacher, score_thr=0.5, nms_iou=None,
            max_per_img=None)``), for unlabelled images; ``'none'``: no task
            loss, distillation losses that need no ground truth only.
        pseudo_labels (dict, optional): see ``labels``.
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
            per='loss', terms=None, max_factor=None)``: each loss (``per='term'``: each listed term)
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
                 teacher: Union[dict, str, None] = None,
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 recorders: Optional[dict] = None,
                 teacher_strict: bool = True,
                 teachers: Optional[Dict[str, dict]] = None,
                 labels: str = 'gt',
                 pseudo_labels: Optional[dict] = None,
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
        teacher_models = build_teachers(
            teacher_specs(teacher, teacher_ckpt, teacher_strict, teachers))
        t_pps = teacher_preprocessors(student_model.data_preprocessor, {
            n: t.data_preprocessor
            for n, t in teacher_models.items()
        })
        pp = DistillDataPreprocessor(student_model.data_preprocessor, teachers=t_pps) \
            if teachers else DistillDataPreprocessor(student_model.data_preprocessor,
                                                     t_pps.get(SINGLE_TEACHER))
        super().__init__(data_preprocessor=pp, init_cfg=init_cfg)
        self.student = student_model
        # a plain dict, not sub-modules (see the class docstring)
        self.teachers: Dict[str, nn.Module] = teacher_models
        if inplace_activations not in INPLACE_MODES:
            raise ValueError(f'inplace_activations must be one of {INPLACE_MODES}, got '
                             f'{inplace_activations!r}.')
        self.inplace_activations = inplace_activations
        if inplace_activations == 'disable':
            for model in (self.student, *self.teachers.values()):
                disable_inplace(model)

        self.inherit_from_teacher = tuple(inherit_from_teacher or ())
        inherit_teacher_weights(self.student, self.teacher, self.inherit_from_teacher)
        self.record_specs = {k: dict(v) for k, v in (recorders or {}).items()}
        t_sources = {
            n: split_record_sources(specs_for_teacher(self.record_specs, n))[1]
            for n in self.teachers
        }
        if fuse_teacher_bn:
            for name, model in self.teachers.items():
                fold_teacher_bn(
                    model,
                    probe_size,
                    skip=self.inherit_from_teacher,
                    recorded=[v['source'] for v in t_sources[name].values()])
        if teacher_channels_last not in (None, True, False):
            raise TypeError('teacher_channels_last must be None (on CPU only), True or '
                            f'False, got {teacher_channels_last!r}.')
        self.teacher_channels_last = teacher_channels_last
        self.schedule = DistillSchedule(warmup_iters, stop_epoch)
        s_sources = split_record_sources(self.record_specs)[0]
        self.student_recorder = ModuleOutputsRecorder(self.student, s_sources, 'student')
        self.student_heads = heads_to_run(s_sources, 'student')
        self.teacher_recorders = {
            n: ModuleOutputsRecorder(m, t_sources[n], n)
            for n, m in self.teachers.items()
        }
        self.teacher_heads_by_name = {n: heads_to_run(t_sources[n], n) for n in self.teachers}

        self.distill_losses = nn.ModuleDict()
        self.loss_bindings: Dict[str, Dict[str, tuple]] = {}
        with DefaultScope.overwrite_default_scope('mmkd_det'):
            for name, cfg in (distill_losses or {}).items():
                if 'loss' not in name:
                    raise KeyError(f'Distillation loss name {name!r} must contain "loss" '
                                   f'(mmengine only back-propagates keys containing it).')
                self.distill_losses[name] = build_checked(MODELS, cfg, f'distill_losses[{name!r}]')
                self.loss_bindings[name] = bind_loss_inputs(name, self.distill_losses[name],
                                                            self.record_specs, list(self.teachers))
        self._setup_losses(probe_size)
        self.labels = labels
        self.labeler = build_labels(
            labels, pseudo_labels, list(self.teachers),
            [n for n, loss in self.distill_losses.items() if needs_gt(loss, self.loss_bindings[n])],
            dict(loss_calibration=loss_calibration is not None, stop_epoch=stop_epoch is not None))
        self.loss_calibration = build_calibration(loss_calibration, self.distill_losses,
                                                  warmup_iters)

    # ----------------------------------------------------------------- build
    def init_weights(self) -> None:
        super().init_weights()
        # the runner's init must not undo inheritance
        inherit_teacher_weights(self.student, self.teacher, self.inherit_from_teacher)

    def _setup_losses(self, probe_size: int) -> None:
        """Probe the detectors' record shapes; let each loss build its adapters."""
        shapes = dict(
            student=probe_records(self.student, self.student_recorder, self.student_heads,
                                  probe_size, self.inplace_activations, 'student'))
        for name, model in self.teachers.items():
            try:
                shapes[name] = probe_records(model, self.teacher_recorders[name],
                                             self.teacher_heads_by_name[name], probe_size,
                                             self.inplace_activations, name)
            except RecordError as err:  # e.g. teacher_levels out of range: show both sides
                student = {r: [tuple(s[1:]) for s in v] for r, v in shapes['student'].items()}
                raise RecordError(f'{err} The student\'s records (C, H, W per level, probe '
                                  f'{probe_size} px): {student}.') from None
        for name, loss in self.distill_losses.items():
            arg_shapes = {
                arg: shapes[b[1]][b[2]]
                for arg, b in self.loss_bindings[name].items() if b[0] == 'record'
            }
            if hasattr(loss, 'setup'):
                loss.setup(arg_shapes, name=name)
            extras = {b[1] for b in self.loss_bindings[name].values() if b[0] == 'extra'}
            if hasattr(loss, 'check_detectors') and {'student', 'teacher'} & extras:
                loss.check_detectors(self.student,
                                     self.loss_teacher(name) if 'teacher' in extras else None)

    @property
    def teacher(self) -> nn.Module:
        """The (first) teacher."""
        return next(iter(self.teachers.values()))

    @property
    def teacher_recorder(self) -> ModuleOutputsRecorder:
        """The (first) teacher's recorder."""
        return next(iter(self.teacher_recorders.values()))

    @property
    def teacher_heads(self) -> List[str]:
        """The heads the (first) teacher's recorded forward runs."""
        return next(iter(self.teacher_heads_by_name.values()))

    def loss_teacher(self, name: str) -> nn.Module:
        """The teacher loss ``name`` reads records of (the ``teacher`` extra input):
        the only teacher, or the one its record inputs name."""
        if len(self.teachers) == 1:
            return self.teacher
        used = {b[1] for b in self.loss_bindings[name].values() if b[0] == 'record'}
        used.discard('student')
        if len(used) != 1:
            raise ValueError(f'{name} takes the teacher detector, but reads records of '
                             f'{sorted(used) or "no teacher"}: with several teachers its '
                             f'inputs must name exactly one.')
        return self.teachers[used.pop()]

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

    def _teacher_forward(self,
                         inputs: torch.Tensor,
                         teacher_inputs=None,
                         data_samples=None) -> None:
        """Every teacher's recorded forward (:func:`.teacher.teacher_forward`) on
        its own inputs; the pseudo-labelling teacher's writes its detections as
        ``data_samples``' ground truth in the same pass."""
        for name, model in self.teachers.items():
            labeler = self.labeler if self.labeler and self.labeler.teacher == name else None
            teacher_forward(model, self.teacher_recorders[name], self.teacher_heads_by_name[name],
                            self._teacher_inputs(name, inputs, teacher_inputs),
                            self.teacher_channels_last, labeler, data_samples)

    @staticmethod
    def _teacher_inputs(name: str, inputs: torch.Tensor, teacher_inputs) -> torch.Tensor:
        """Teacher ``name``'s batch: its own (``teacher_inputs``: a tensor for the
        single teacher, a dict for several) or the student's."""
        if isinstance(teacher_inputs, dict):
            return teacher_inputs.get(name, inputs)
        return inputs if teacher_inputs is None else teacher_inputs

    def reset_records(self) -> None:
        """Drop every record (student and teachers)."""
        self.student_recorder.reset()
        for recorder in self.teacher_recorders.values():
            recorder.reset()

    def _loss_kwargs(self, name: str, data_samples) -> dict:
        """Arguments of loss ``name`` from the current records and extras."""
        records = dict(student=self.student_recorder, **self.teacher_recorders)
        extras = dict(
            gt_instances=lambda: [s.gt_instances for s in data_samples],
            batch_img_metas=lambda: [s.metainfo for s in data_samples],
            strides=lambda: self.strides,
            student=lambda: self.student,
            teacher=lambda: self.loss_teacher(name))
        return {
            arg: (records[b[1]].get(b[2]) if b[0] == 'record' else extras[b[1]]())
            for arg, b in self.loss_bindings[name].items()
        }

    def record_step(self, inputs, data_samples, teacher_inputs=None) -> dict:
        """The teachers' forwards, then the student's task losses, all recorded;
        returns the task losses (the records stay until the next step).
        ``labels='none'``: the student's recorded forward instead, no task loss."""
        # teachers first: their activations are freed before the student's exist (a
        # lower peak than student-then-teacher), only their records stay
        self._teacher_forward(inputs, teacher_inputs, data_samples)
        if self.labels == 'none':
            record_forward(self.student, self.student_recorder, self.student_heads, inputs)
            return {}
        with self.student_recorder, ExitStack() as contexts:
            # a loss may watch the student's task loss (LD reuses its assignment)
            for loss in self.distill_losses.values():
                if hasattr(loss, 'student_context'):
                    contexts.enter_context(loss.student_context(self.student))
            return self.student.loss(inputs, data_samples)

    def loss(self, inputs, data_samples, teacher_inputs=None) -> dict:
        scale, calibration, it = self.distill_scale(), self.loss_calibration, self.schedule.iter
        if self.labels == 'gt':
            check_annotated(data_samples)
        if scale == 0.0 or (calibration and not calibration.active(it)):
            if self.labeler:  # the task loss needs the teacher's detections
                name = self.labeler.teacher
                self.labeler.label(self.teachers[name],
                                   self._teacher_inputs(name, inputs, teacher_inputs), data_samples)
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
        self.reset_records()
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
    def teacher_predict_step(self, data: dict, name: Optional[str] = None) -> list:
        """Teacher ``name``'s (default: the first) predictions for a raw val batch
        (its own preprocessing)."""
        name = name or next(iter(self.teachers))
        data = self.data_preprocessor.teacher_of(name)(data, False)
        return self.teachers[name].predict(data['inputs'], data['data_samples'])

    def __deepcopy__(self, memo):
        """A copy (e.g. the EMA model of mmengine's ``EMAHook``) shares the frozen
        teachers instead of holding copies of them."""
        for model in self.teachers.values():
            memo[id(model)] = model
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.cpu()/.half() must reach the unregistered teachers too.
        for model in self.teachers.values():
            model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)
