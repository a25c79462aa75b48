"""The Distiller: a frozen teacher, a trainable student and config-selected losses."""
import copy
import inspect
import logging
import os.path as osp
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from mmkd_det.registry import MODELS
from ..recorders import ModuleOutputsRecorder, disable_inplace
from .data_preprocessor import DistillDataPreprocessor, same_preprocessing
from .teacher_loading import load_teacher_checkpoint

#: keyword arguments a loss may request by name, provided by the Distiller.
EXTRA_INPUTS = ('gt_instances', 'batch_img_metas', 'strides', 'student', 'teacher')
_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
#: distill / task loss ratio beyond which (either way) a warning is logged once.
MAGNITUDE_LIMIT = 100.0
#: top-level detector attributes whose forward(feats) the Distiller can run.
_HEADS = ('bbox_head', 'rpn_head')
INPLACE_MODES = ('auto', 'keep', 'disable')


def load_model_cfg(cfg: Union[str, dict], role: str) -> ConfigDict:
    """Resolve a teacher/student model config.

    Accepts an inline model dict, a config file path (local, or ``mmdet::...``),
    or ``dict(cfg_path=..., **overrides)`` whose overrides are merged into the
    file's ``model`` (so ``num_classes`` etc. can be changed by inheritance).
    """
    if isinstance(cfg, str):
        cfg = dict(cfg_path=cfg)
    cfg = ConfigDict(cfg)
    path = cfg.pop('cfg_path', None)
    if path is None:
        if 'type' not in cfg:
            raise KeyError(f'{role} config needs `type` (an inline mmdet model dict) or '
                           f'`cfg_path` (a config file), got keys {sorted(cfg)}.')
        return cfg
    if '::' in path:
        from mmengine.hub import get_config
        file_cfg = get_config(path)
    else:
        repo_path = osp.join(_REPO_ROOT, path)
        if not osp.isfile(path) and not osp.isabs(path) and osp.isfile(repo_path):
            path = repo_path
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{role} cfg_path {path!r} does not exist (relative paths are resolved '
                f'from the current directory, then from the mmkd_det checkout).')
        file_cfg = Config.fromfile(path)
    if 'model' not in file_cfg:
        raise KeyError(f'{role} cfg_path {path!r} defines no `model`.')
    return ConfigDict(Config._merge_a_into_b(cfg, ConfigDict(file_cfg.model)))


@MODELS.register_module()
class Distiller(BaseModel):
    """Distil a frozen teacher detector into a student detector.

    The teacher is kept out of the module tree (as mmdet's
    ``KnowledgeDistillationSingleStageDetector`` does): it is never in a
    checkpoint, the optimizer, DDP or the runner's ``init_weights``; it is
    frozen, always in eval mode and runs under ``no_grad``, computing only what
    the losses read (backbone + neck, plus a head forward when a head output
    is recorded; never its losses).

    Args:
        student (dict | str): mmdet model config, config path or
            ``dict(cfg_path=..., **overrides)``.
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
            up to float rounding. On CPU this measured the RetinaNet R101 + FPN
            forward at 1333x800 (batch 2, 2 threads) about 35 % faster, and no
            change on the 128 px synthetic pair (docs/benchmark.md); on CUDA it
            is unmeasured. None (default): on CPU inputs only.
        inplace_activations (str): the detectors' inplace activations
            (``ReLU(inplace=True)``, ...) would overwrite a record if one ran on
            a recorded module's output. ``'auto'`` (default): keep them (no
            extra copies) unless the build-time probe finds a record changed in
            place; then that detector's are disabled (logged). ``'disable'``:
            always disable them (each activation then allocates its output).
            ``'keep'``: never; a record changed in place is an error. In every
            mode a record changed in place after capture is refused when a loss
            reads it (:class:`RecordError`), never used silently.
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
                 data_preprocessor=None,
                 init_cfg=None):
        # nested mmdet/mmengine builds (data preprocessors, heads) need our scope,
        # whatever scope the caller runs under
        with DefaultScope.overwrite_default_scope('mmkd_det'):
            student_model = MODELS.build(load_model_cfg(student, 'student'))
            teacher_model = MODELS.build(load_model_cfg(teacher, 'teacher'))
        t_pp = None if same_preprocessing(teacher_model.data_preprocessor,
                                          student_model.data_preprocessor) \
            else teacher_model.data_preprocessor
        super().__init__(
            data_preprocessor=DistillDataPreprocessor(student_model.data_preprocessor, t_pp),
            init_cfg=init_cfg)
        self.student = student_model
        # Plain attribute, not a sub-module (see class docstring).
        object.__setattr__(self, 'teacher', teacher_model)
        load_teacher_checkpoint(self.teacher, teacher_ckpt, strict=teacher_strict)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        if inplace_activations not in INPLACE_MODES:
            raise ValueError(f'inplace_activations must be one of {INPLACE_MODES}, got '
                             f'{inplace_activations!r}.')
        self.inplace_activations = inplace_activations
        if inplace_activations == 'disable':
            disable_inplace(self.teacher)
            disable_inplace(self.student)

        self._magnitude_warned = False
        self.inherit_from_teacher = tuple(inherit_from_teacher or ())
        self._inherit_teacher_weights()
        if fuse_teacher_bn:
            self._fuse_teacher_bn(probe_size)
        if teacher_channels_last not in (None, True, False):
            raise TypeError('teacher_channels_last must be None (on CPU only), True or '
                            f'False, got {teacher_channels_last!r}.')
        self.teacher_channels_last = teacher_channels_last
        self.warmup_iters = int(warmup_iters)
        self.stop_epoch = stop_epoch
        self.record_specs = {k: dict(v) for k, v in recorders.items()}
        s_sources = {k: {kk: vv for kk, vv in v.items() if kk != 'teacher_source'}
                     for k, v in self.record_specs.items()}
        t_sources = {k: dict(source=v.get('teacher_source') or v['source'],
                             index=v.get('index'), levels=v.get('levels'))
                     for k, v in self.record_specs.items()}
        self.student_recorder = ModuleOutputsRecorder(self.student, s_sources, 'student')
        self.teacher_recorder = ModuleOutputsRecorder(self.teacher, t_sources, 'teacher')
        self.teacher_heads = self._heads_to_run(self.teacher, t_sources, 'teacher')
        self._student_heads = self._heads_to_run(self.student, s_sources, 'student')

        self.distill_losses = nn.ModuleDict()
        self.loss_bindings: Dict[str, Dict[str, tuple]] = {}
        with DefaultScope.overwrite_default_scope('mmkd_det'):
            for name, cfg in distill_losses.items():
                if 'loss' not in name:
                    raise KeyError(f'Distillation loss name {name!r} must contain "loss" '
                                   f'(mmengine only back-propagates keys containing it).')
                self.distill_losses[name] = MODELS.build(cfg)
                self.loss_bindings[name] = self._bind(name, self.distill_losses[name])
        self._setup_losses(probe_size)

    # ----------------------------------------------------------------- build
    def _inherit_teacher_weights(self) -> None:
        """Copy the teacher's ``inherit_from_teacher`` sub-modules into the student."""
        for prefix in self.inherit_from_teacher:
            names = prefix.split('.')
            try:
                s_mod, t_mod = self.student, self.teacher
                for n in names:
                    s_mod, t_mod = getattr(s_mod, n), getattr(t_mod, n)
            except AttributeError:
                raise KeyError(f'inherit_from_teacher: {prefix!r} is not a sub-module of both '
                               f'detectors (e.g. neck, bbox_head, rpn_head, roi_head).') from None
            s_state, t_state = s_mod.state_dict(), t_mod.state_dict()
            bad = sorted(k for k in s_state if k not in t_state or
                         t_state[k].shape != s_state[k].shape)
            if bad or set(t_state) != set(s_state):
                raise ValueError(
                    f'inherit_from_teacher: student {prefix} cannot take the teacher\'s weights '
                    f'(missing or different shapes: {bad[:5]}{"..." if len(bad) > 5 else ""}). '
                    f'Inheritance needs the same {prefix} architecture and widths; remove '
                    f'{prefix!r} from inherit_from_teacher.')
            s_mod.load_state_dict(t_state)

    #: largest |fused - unfused| / max|unfused| per teacher feature level accepted
    FUSE_TOLERANCE = 1e-4

    def _fuse_teacher_bn(self, size: int) -> None:
        """Fold the teacher's BatchNorm layers into the preceding convolutions
        (outside ``inherit_from_teacher``) and check the features are unchanged."""
        from mmcv.cnn import fuse_conv_bn
        children = [m for n, m in self.teacher.named_children()
                    if n not in self.inherit_from_teacher and n != 'data_preprocessor']
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                   for c in children for m in c.modules()):
            return
        probe = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        original = {id(c): copy.deepcopy(c) for c in children}
        with torch.no_grad():
            before = self.teacher.extract_feat(probe)
            for child in children:
                fuse_conv_bn(child)
            self.teacher.requires_grad_(False)
            after = self.teacher.extract_feat(probe)
        errors = [((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
                  for a, b in zip(after, before)]
        if max(errors) > self.FUSE_TOLERANCE:
            for name, child in list(self.teacher.named_children()):
                if id(child) in original:
                    setattr(self.teacher, name, original[id(child)])
            print_log(f'fuse_teacher_bn: folding the teacher\'s BatchNorm into its convolutions '
                      f'changed its features (relative error {max(errors):.2g}); kept the '
                      f'unfused teacher. Set fuse_teacher_bn=False to skip the attempt.',
                      logger='current', level=logging.WARNING)

    def init_weights(self) -> None:
        super().init_weights()
        self._inherit_teacher_weights()  # the runner's init must not undo inheritance

    @staticmethod
    def _heads_to_run(model: nn.Module, sources: dict, role: str) -> List[str]:
        heads = []
        for name, spec in sources.items():
            top = spec['source'].split('.')[0]
            if top in ('backbone', 'neck'):
                continue
            if top not in _HEADS:
                raise ValueError(
                    f'Recorder {name!r}: the {role} can only be recorded in backbone, neck, '
                    f'{" or ".join(_HEADS)} (got {spec["source"]!r}); RoI heads need '
                    f'proposals and are not run for the teacher.')
            if top not in heads:
                heads.append(top)
        return heads

    def _bind(self, name: str, loss: nn.Module) -> Dict[str, tuple]:
        """Map each forward argument of ``loss`` to a record or an extra input."""
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
                if role not in ('student', 'teacher') or record not in self.record_specs:
                    raise KeyError(
                        f'{name}: input {arg}={inputs[arg]!r} must be "student.<record>" or '
                        f'"teacher.<record>" with a record among {sorted(self.record_specs)}. '
                        f'Add the record to the Distiller `recorders`.')
                binding[arg] = ('record', role, record)
            elif arg in EXTRA_INPUTS:
                binding[arg] = ('extra', arg)
            elif p.default is p.empty:
                raise KeyError(f'{name}: argument {arg!r} of {type(loss).__name__}.forward '
                               f'is not bound; set inputs=dict({arg}="student.<record>").')
        return binding

    @staticmethod
    def _record_forward(model, recorder, heads, inputs: torch.Tensor) -> None:
        """Backbone, neck and the recorded ``heads`` of ``model`` under ``recorder``."""
        with recorder:
            feats = model.extract_feat(inputs)
            for head in heads:
                getattr(model, head)(feats)

    @torch.no_grad()
    def _probe(self, role: str, size: int) -> Dict[str, List[torch.Size]]:
        """Record shapes of ``role`` on a zero image; also where its inplace
        activations overwrite a record (see ``inplace_activations``)."""
        model, recorder, heads = dict(
            student=(self.student, self.student_recorder, self._student_heads),
            teacher=(self.teacher, self.teacher_recorder, self.teacher_heads))[role]
        was_training = model.training
        model.eval()
        try:
            self._record_forward(model, recorder, heads, torch.zeros(1, 3, size, size))
            modified = recorder.modified()
            if modified and self.inplace_activations == 'auto':
                count = disable_inplace(model)
                print_log(f'inplace_activations=auto: the {role}\'s inplace operations change '
                          f'records {modified} in place; disabled its {count} inplace '
                          f'activations.', logger='current', level=logging.INFO)
                self._record_forward(model, recorder, heads, torch.zeros(1, 3, size, size))
                modified = recorder.modified()
            if modified:
                raise ValueError(
                    f'Records {modified} of the {role} are changed in place after they are '
                    f'recorded (inplace_activations={self.inplace_activations!r}), so the '
                    f'losses would read overwritten values. '
                    + ('Set inplace_activations=\'auto\' or \'disable\'.'
                       if self.inplace_activations == 'keep' else
                       'A non-activation inplace operation (e.g. a residual `+=`) follows '
                       'the recorded module: record another module (e.g. the whole block).'))
            return {n: [t.shape for t in recorder.get(n)] for n in recorder.specs}
        finally:
            recorder.reset()
            model.train(was_training)

    def _setup_losses(self, probe_size: int) -> None:
        shapes = dict(student=self._probe('student', probe_size),
                      teacher=self._probe('teacher', probe_size))
        for name, loss in self.distill_losses.items():
            arg_shapes = {arg: shapes[b[1]][b[2]] for arg, b in
                          self.loss_bindings[name].items() if b[0] == 'record'}
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
    def distill_scale(self) -> float:
        """Current factor of every distillation loss (warm-up, stop epoch)."""
        hub = MessageHub.get_current_instance()
        if self.stop_epoch is not None and hub.get_info('epoch', 0) >= self.stop_epoch:
            return 0.0
        if self.warmup_iters > 0:
            return min(1.0, (hub.get_info('iter', 0) + 1) / self.warmup_iters)
        return 1.0

    # --------------------------------------------------------------- forward
    def forward(self, inputs, data_samples=None, mode: str = 'tensor',
                teacher_inputs: Optional[torch.Tensor] = None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs)
        return self.student(inputs, data_samples, mode)

    def _teacher_forward(self, inputs: torch.Tensor) -> None:
        channels_last = self.teacher_channels_last
        if channels_last is None:
            channels_last = inputs.device.type == 'cpu'
        if channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            self._record_forward(self.teacher, self.teacher_recorder, self.teacher_heads, inputs)
        if channels_last:
            self.teacher_recorder.make_contiguous()

    def _loss_kwargs(self, name: str, data_samples) -> dict:
        """Arguments of loss ``name`` from the current records and extras."""
        records = dict(student=self.student_recorder, teacher=self.teacher_recorder)
        extras = dict(gt_instances=[s.gt_instances for s in data_samples],
                      batch_img_metas=[s.metainfo for s in data_samples],
                      strides=self.strides, student=self.student, teacher=self.teacher)
        return {arg: (records[b[1]].get(b[2]) if b[0] == 'record' else extras[b[1]])
                for arg, b in self.loss_bindings[name].items()}

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
        scale = self.distill_scale()
        if scale == 0.0:
            losses = self.student.loss(inputs, data_samples)
            # keep every trainable parameter in the graph (DDP without
            # find_unused_parameters) at zero cost
            extra = [p.sum() * 0 for p in self.distill_losses.parameters()]
            if extra:
                losses['distill.loss_stopped'] = torch.stack(extra).sum()
            return losses
        losses = self.record_step(inputs, data_samples, teacher_inputs)
        for name, loss in self.distill_losses.items():
            value = loss(**self._loss_kwargs(name, data_samples))
            # a loss may return its terms (each logged, all summed by the runner)
            terms = {f'{name}.{k}': v for k, v in value.items()} \
                if isinstance(value, dict) else {name: value}
            for key, term in terms.items():
                if not torch.isfinite(term).all():
                    it = MessageHub.get_current_instance().get_info('iter', 0)
                    raise FloatingPointError(
                        f'Distillation loss {key} is {term.item()} at iteration {it}. Check '
                        f'that the teacher checkpoint matches the teacher config and both use '
                        f'the same preprocessing; otherwise lower its loss_weight, raise '
                        f'warmup_iters or add optim_wrapper.clip_grad.')
                losses[f'distill.{key}'] = term * scale
        losses['distill_ratio'] = self._magnitude_ratio(losses, warn=scale == 1.0)
        # drop the references now: teacher tensors need not live through backward
        self.student_recorder.reset()
        self.teacher_recorder.reset()
        return losses

    @torch.no_grad()
    def _magnitude_ratio(self, losses: dict, warn: bool) -> torch.Tensor:
        """Distillation / task loss (logged as ``distill_ratio``); warns once when it
        is off by more than ``MAGNITUDE_LIMIT`` either way (after warm-up)."""
        def total(items):
            vals = [v for _, val in items for v in (val if isinstance(val, list) else [val])]
            return torch.stack([v.detach().float().sum() for v in vals]).sum() if vals \
                else torch.zeros(())
        distill = total((k, v) for k, v in losses.items() if k.startswith('distill.'))
        task = total((k, v) for k, v in losses.items()
                     if 'loss' in k and not k.startswith('distill.'))
        ratio = distill / task.clamp(min=1e-12)
        value = ratio.item()
        off = value > MAGNITUDE_LIMIT or 0 < value < 1 / MAGNITUDE_LIMIT
        if warn and off and not self._magnitude_warned:
            self._magnitude_warned = True
            it = MessageHub.get_current_instance().get_info('iter', 0)
            print_log(
                f'Distillation losses are {value:.3g}x the task loss at iteration {it} '
                f'(distill {distill.item():.4g}, task {task.item():.4g}): '
                f'{"they will swamp the detection losses" if value > 1 else "they do almost nothing"}'
                f'. Scale the loss_weight of {sorted(self.distill_losses)} by about '
                f'{1 / value:.2g} if this is not intended (logged as distill_ratio).',
                logger='current', level=logging.WARNING)
        return ratio

    @torch.no_grad()
    def visual_maps(self, inputs, data_samples, teacher_inputs=None) -> Dict[str, dict]:
        """Per loss that defines ``visual_maps``: its named per-level (N, H, W)
        weighting maps on this batch (for tools/visualize_masks.py). The student
        runs its backbone, neck and recorded heads in its current mode."""
        self._record_forward(self.student, self.student_recorder, self._student_heads, inputs)
        self._teacher_forward(inputs if teacher_inputs is None else teacher_inputs)
        maps = {name: loss.visual_maps(**self._loss_kwargs(name, data_samples))
                for name, loss in self.distill_losses.items() if hasattr(loss, 'visual_maps')}
        self.student_recorder.reset()
        self.teacher_recorder.reset()
        return maps

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

