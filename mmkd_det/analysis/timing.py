"""A Distiller's training step and its parts on one fixed batch, timed
interleaved, with the page faults and the peak memory of each.

:class:`Step` holds the three steps of a Distiller (plain student, teacher
forward, distillation) and the distillation losses alone; :func:`time_steps`
repeats them interleaved, the order rotated every iteration, and
:func:`time_ratios` turns the means and samples into the figures
``tools/analysis_tools/measure_cost.py`` and ``measure_throughput.py`` report
(see :mod:`mmkd_det.analysis.cost` for their definitions).
"""
import contextlib
import ctypes
import dataclasses
import gc
import re
import resource
import statistics as st
import time
from typing import Optional

import torch
from mmengine.logging import MessageHub

from mmkd_det.apis import build_distiller_and_batch

#: the steps whose time and memory are compared: plain student, teacher forward, distillation
PHASES = ('student', 'teacher', 'distill')
#: the timed steps: :data:`PHASES` and the distillation losses alone
TIMED = PHASES + ('loss_alone', )


def _status_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'{field}:\s+(\d+)', f.read()).group(1))


def peak_extra_bytes(fn, repeats: int = 2) -> int:
    """Peak resident memory of ``fn()`` (called ``repeats`` times) above the
    process's memory just before it, in bytes (Linux only).

    Freed heap is handed back first (``malloc_trim``) so that earlier frees do
    not hide new allocations; for large blocks to be returned on free, run the
    process with ``MALLOC_MMAP_THRESHOLD_`` set (the ``--phase`` children are).
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass
    before = _status_kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:  # reset VmHWM to VmRSS
        f.write('5')
    for _ in range(repeats):
        fn()
    return max(0, _status_kb('VmHWM') - before) * 1024


def param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) if module else 0


#: parts of a step timed inside it (``time_steps(parts=...)``): the teacher
#: forward the Distiller runs, the student's ``loss`` (forward and task losses),
#: and the backward (``parse_losses``, ``zero_grad`` and ``backward``)
PARTS = ('teacher_forward', 'student_forward', 'backward')


class Step:
    """The three steps of a Distiller on one fixed training batch (``data``, as a
    dataloader yields it). ``part_time`` collects the seconds of the losses'
    forwards, their masks and :data:`PARTS` spent since it was last emptied.

    The distillation schedule (warm-up, stop epoch) reads the iteration and
    epoch of mmengine's MessageHub (0 when no training runs), as at that point
    of a training.

    ``amp=True`` runs the forwards (and the losses) under ``torch.autocast``, as
    mmengine's ``AmpOptimWrapper`` (``tools/train.py --amp``) does: float16 with a
    gradient scaler on CUDA, bfloat16 on CPU."""

    def __init__(self, model, data, amp: bool = False):
        model.train()
        hub = MessageHub.get_current_instance()
        model.set_progress(iter=hub.get_info('iter', 0), epoch=hub.get_info('epoch', 0))
        self.model = model
        batch = model.data_preprocessor(data, True)
        self.inputs, self.samples = batch['inputs'], batch['data_samples']
        self.teacher_inputs = batch.get('teacher_inputs')
        self.amp = bool(amp)
        cuda = self.inputs.is_cuda
        self._scaler = torch.amp.GradScaler('cuda') if self.amp and cuda else None
        self._amp_dtype = torch.float16 if cuda else torch.bfloat16
        self.part_time = {}
        # instance attributes shadow the methods: the Distiller's own calls are timed
        self._wrapped = []
        for loss in model.distill_losses.values():
            if hasattr(loss, 'masks'):
                self._wrap(loss, 'masks', 'masks')
            self._wrap(loss, 'forward', 'losses')
        self._wrap(model, '_teacher_forward', 'teacher_forward')
        self._wrap(model.student, 'loss', 'student_forward')
        self._backward = self._timed(self._backward_only, 'backward')

    @classmethod
    def from_config(cls, config, cfg_options, teacher_ckpt) -> 'Step':
        """The Distiller of ``config`` and the first batch of its train loader."""
        _, model, data = build_distiller_and_batch(config, cfg_options, teacher_ckpt)
        return cls(model, data)

    def release(self) -> None:
        """Take the timing wrappers off the model and this Step, so that dropping
        both frees their memory at once. The wrappers hold the Step and the Step holds
        the model: a reference cycle that only Python's garbage collector frees, at a
        time of its own; on CUDA a model it has not freed yet counts in the peak memory
        of the next config measured in the same process."""
        for obj, name in self._wrapped + [(self, '_backward')]:
            obj.__dict__.pop(name, None)
        self._wrapped = []
        self.drop_loss_inputs()

    def _wrap(self, obj, name: str, part: str) -> None:
        """Time ``obj.name`` into ``part_time[part]`` (undone by :meth:`release`)."""
        setattr(obj, name, self._timed(getattr(obj, name), part))
        self._wrapped.append((obj, name))

    def _timed(self, fn, part: str):
        """``fn``, its seconds added to ``part_time[part]``."""

        def wrapper(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            self.part_time[part] = self.part_time.get(part, 0.0) + time.perf_counter() - start
            return out

        return wrapper

    def autocast(self):
        """``torch.autocast`` of the step's device with ``amp``, else a no-op."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.inputs.device.type, dtype=self._amp_dtype)

    def _scaled_backward(self, total) -> None:
        """``total.backward()``, through the gradient scaler under CUDA ``amp``."""
        (self._scaler.scale(total) if self._scaler is not None else total).backward()

    def _backward_only(self, losses):
        total, _ = self.model.parse_losses(losses)
        self.model.zero_grad(set_to_none=True)
        self._scaled_backward(total)

    def student(self):
        with self.autocast():
            losses = self.model.student.loss(self.inputs, self.samples)
        self._backward(losses)

    def teacher(self):
        with self.autocast():
            self.model._teacher_forward(self.inputs, self.teacher_inputs)
        self.model.reset_records()

    def distill(self):
        with self.autocast():
            losses = self.model.loss(self.inputs, self.samples, self.teacher_inputs)
        self._backward(losses)

    def _fix_loss_inputs(self) -> None:
        """Each loss's arguments on this batch, its record tensors detached (the
        student's as leaves that take gradients, also kept in ``_leaves``),
        recorded once."""
        m = self.model
        with self.autocast():
            m.record_step(self.inputs, self.samples, self.teacher_inputs)
        self._loss_inputs, self._leaves = {}, []
        for name in m.distill_losses:
            kwargs = m._loss_kwargs(name, self.samples)
            for arg, bound in m.loss_bindings[name].items():
                if bound[0] == 'record':
                    kwargs[arg] = [
                        t.detach().requires_grad_(bound[1] == 'student') for t in kwargs[arg]
                    ]
                    if bound[1] == 'student':
                        self._leaves += kwargs[arg]
            self._loss_inputs[name] = kwargs
        # losses on the student's own RoIs (Mimic, DKD, ...) read a capture that is
        # used up by one call: keep it, the student's tensors as leaves, and hand
        # it back before every call
        self._captures = []
        for module in m.distill_losses.modules():
            capture = getattr(module, '_capture', None)
            record = getattr(capture, 'record', None)
            if record is not None:
                leaves = dict(
                    cls_score=record.cls_score.detach().requires_grad_(),
                    bbox_pred=record.bbox_pred.detach().requires_grad_(),
                    feats=tuple(f.detach().requires_grad_() for f in record.feats))
                self._leaves += [leaves['cls_score'], leaves['bbox_pred'], *leaves['feats']]
                self._captures.append((module, dataclasses.replace(record, **leaves)))
        m.reset_records()

    def loss_input_bytes(self) -> int:
        """Bytes of the tensors :meth:`loss_alone` fixed (0 before its first call)."""
        # the leaves (``_leaves``) are among these tensors
        stack = [getattr(self, '_loss_inputs', {})]
        stack += [record for _, record in getattr(self, '_captures', [])]
        seen = set()
        total = 0
        while stack:
            item = stack.pop()
            if isinstance(item, torch.Tensor):
                if id(item) not in seen:
                    seen.add(id(item))
                    total += item.numel() * item.element_size()
            elif isinstance(item, dict):
                stack += item.values()
            elif isinstance(item, (list, tuple)):
                stack += item
            elif dataclasses.is_dataclass(item):
                stack += [getattr(item, f.name) for f in dataclasses.fields(item)]
        return total

    def drop_loss_inputs(self) -> None:
        """Forget the records :meth:`loss_alone` fixed (the next call records them
        again): held by this Step, they would count in every step's peak memory."""
        for name in ('_loss_inputs', '_leaves', '_captures'):
            self.__dict__.pop(name, None)

    def loss_alone(self):
        if not hasattr(self, '_loss_inputs'):
            self._fix_loss_inputs()
        # each distill step gives the loss a new capture: hand the record to the current one
        for module, record in self._captures:
            module._capture.record = record
        terms = []
        with self.autocast():
            for name, loss in self.model.distill_losses.items():
                value = loss(**self._loss_inputs[name])
                terms += list(value.values()) if isinstance(value, dict) else [value]
        self.model.zero_grad(set_to_none=True)
        for leaf in self._leaves:
            leaf.grad = None
        self._scaled_backward(torch.stack([t.float() for t in terms]).sum())

    def param_bytes(self, phase: str) -> int:
        m = self.model
        return dict(
            student=param_bytes(m.student),
            teacher=param_bytes(m.teacher),
            distill=param_bytes(m.student) + param_bytes(m.teacher) +
            param_bytes(m.distill_losses))[phase]


def minor_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(step: Step,
               iters: int,
               warmup: int,
               phases=TIMED,
               samples=None,
               faults=None,
               parts=None) -> dict:
    """Mean seconds of each of ``phases``, run interleaved ``warmup + iters`` times,
    the order rotated by one every iteration (CUDA is synchronised around each;
    ``masks`` is then not exact). ``samples``: a dict that receives every
    iteration's seconds per phase. ``faults``: a dict that receives each phase's
    mean minor page faults per timed iteration; on CPU every fresh page the C
    allocator takes from the kernel costs one (see ``keep_freed_memory``).
    ``parts``: a dict that receives, as ``'<phase>.<part>'``, every timed
    iteration's seconds of each of :data:`PARTS` inside the student, teacher and
    distill phases (on CUDA without synchronisation inside the step: launch
    times, not kernel times)."""
    sync = torch.cuda.synchronize if step.inputs.is_cuda else (lambda: None)
    times = {k: [] for k in tuple(phases) + ('masks', 'losses')}
    counts = {k: [] for k in phases}
    for it in range(warmup + iters):
        shift = it % len(phases)
        for name in tuple(phases[shift:]) + tuple(phases[:shift]):
            step.part_time = {}
            sync()
            faulted = minor_faults()
            start = time.perf_counter()
            getattr(step, name)()
            sync()
            elapsed = time.perf_counter() - start
            faulted = minor_faults() - faulted
            if it >= warmup:
                times[name].append(elapsed)
                counts[name].append(faulted)
                if name == 'distill':
                    times['masks'].append(step.part_time.get('masks', 0.0))
                    times['losses'].append(step.part_time.get('losses', 0.0))
                if parts is not None and name in ('student', 'teacher', 'distill'):
                    for part in PARTS:
                        if part in step.part_time:
                            parts.setdefault(f'{name}.{part}', []).append(step.part_time[part])
    if samples is not None:
        samples.update({k: v for k, v in times.items() if v})
    if faults is not None:
        faults.update({k: st.mean(v) for k, v in counts.items() if v})
    return {k: st.mean(v) for k, v in times.items() if v}


def time_ratios(mean: dict, samples: dict, parts_samples: Optional[dict] = None) -> dict:
    """The time figures of :func:`time_steps`' means and samples (module doc);
    with ``parts_samples`` (its ``parts``) also their means as ``parts_seconds``."""
    parts = mean['student'] + mean['teacher']
    extra = dict(parts_seconds={k: st.mean(v) for k, v in parts_samples.items()}) \
        if parts_samples else {}
    return dict(
        mean_seconds=mean,
        **extra,
        distill_over_student_plus_teacher=mean['distill'] / parts,
        paired_ratio=paired_ratio(samples),
        floor_over_student_plus_teacher=(parts + mean['loss_alone']) / parts,
        overhead_seconds=mean['distill'] - parts - mean['loss_alone'],
        masks_share_of_distill_step=mean['masks'] / mean['distill'],
        samples_seconds=samples)


def parts_line(res: dict) -> str:
    """Each part's mean seconds inside the distill step against the step that
    runs it alone ('' without ``parts_seconds``)."""
    p = res.get('parts_seconds')
    if not p:
        return ''
    alone = dict(teacher_forward='teacher', student_forward='student', backward='student')
    return 'inside distill (alone): ' + ', '.join(
        f'{part} {p[f"distill.{part}"]:.3f} s ({p[f"{alone[part]}.{part}"]:.3f})'
        for part in PARTS if f'distill.{part}' in p and f'{alone[part]}.{part}' in p)


def paired_ratio(samples: dict) -> dict:
    """Median and quartiles over iterations of distill / (student + teacher)."""
    ratios = [
        d / (s + t) for d, s, t in zip(samples['distill'], samples['student'], samples['teacher'])
    ]
    if len(ratios) < 2:
        return dict(median=ratios[0], q1=ratios[0], q3=ratios[0])
    q1, median, q3 = st.quantiles(ratios, n=4)
    return dict(median=st.median(ratios), q1=q1, q3=q3)
