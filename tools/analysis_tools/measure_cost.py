"""Time and size a distillation training step against its parts, on one fixed batch.

For a Distiller config, on the same batch:

* ``student``: plain student forward + losses + backward;
* ``teacher``: the teacher forward the Distiller runs (backbone, neck, heads
  it records), no grad;
* ``distill``: the Distiller's full training forward + backward;
* ``masks``: time inside the losses' ``masks`` (mask construction), part of
  ``distill``;
* ``losses``: time inside the distillation losses' forwards (adapters,
  connectors, masks, the loss itself; not their backward), part of ``distill``;
* ``loss_alone``: the distillation losses' forward + backward on their own, on
  this batch's records (fixed, the student's as leaf tensors): the work of the
  method itself, which no Distiller can skip.

Time: the steps are repeated interleaved (their order rotates every
iteration); ratio ``distill / (student + teacher)`` (target <= 1.05) of the
means, and the median over iterations of the same ratio per iteration (each
iteration's three steps run back to back, so a slow spell of the machine
weighs on both sides). ``floor = (student + teacher + loss_alone) / (student
+ teacher)`` is the ratio with no Distiller overhead at all;
``overhead = distill - student - teacher - loss_alone``. Inside the student,
teacher and distill steps the teacher forward, the student's forward (its
``loss``) and the backward are timed too (``parts_seconds``): they say which
part of the distill step is slower than the same part run alone.

Memory: each step runs in its own child process (``--phase``). The child
builds the Distiller, runs the step once, frees the gradients, trims the heap
(``malloc_trim``; large blocks are mmap-ed, ``MALLOC_MMAP_THRESHOLD_``, so a
free returns them), resets the peak RSS (``/proc/self/clear_refs``) and runs
the step twice more. A step's memory = bytes of the parameters it uses
(student; teacher; student + teacher + the losses' adapters) + its peak RSS
above the state before it (activations, gradients, workspace), what
``torch.cuda.max_memory_allocated`` would count on a GPU. Ratio
``distill / (student + teacher)`` (target <= 1.10); the activations-only
ratio is reported too.

    python tools/measure_cost.py configs/tid/tid_retina_r18w48_r18w32_synthetic.py \
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth
    # every distillation run of a benchmark preset, one table
    python tools/measure_cost.py --preset review --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth \
        --out docs/measurements/cost_review
"""
import argparse
import ctypes
import gc
import json
import os
import os.path as osp
import re
import resource
import statistics as st
import subprocess
import sys
import time
from typing import Optional

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
TIME_TARGET, MEMORY_TARGET = 1.05, 1.10
PHASES = ('student', 'teacher', 'distill')
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
    with open('/proc/self/clear_refs', 'w') as f:   # reset VmHWM to VmRSS
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
    forwards, their masks and :data:`PARTS` spent since it was last emptied."""

    def __init__(self, model, data):
        model.train()
        self.model = model
        batch = model.data_preprocessor(data, True)
        self.inputs, self.samples = batch['inputs'], batch['data_samples']
        self.teacher_inputs = batch.get('teacher_inputs')
        self.part_time = {}
        # instance attributes shadow the methods: the Distiller's own calls are timed
        for loss in model.distill_losses.values():
            if hasattr(loss, 'masks'):
                loss.masks = self._timed(loss.masks, 'masks')
            loss.forward = self._timed(loss.forward, 'losses')
        model._teacher_forward = self._timed(model._teacher_forward, 'teacher_forward')
        model.student.loss = self._timed(model.student.loss, 'student_forward')
        self._backward = self._timed(self._backward_only, 'backward')

    @classmethod
    def from_config(cls, config, cfg_options, teacher_ckpt) -> 'Step':
        """The Distiller of ``config`` and the first batch of its train loader."""
        from mmkd_det.apis import build_distiller, build_loader
        cfg, model = build_distiller(config, cfg_options, teacher_ckpt)
        return cls(model, next(iter(build_loader(cfg.train_dataloader))))

    def _timed(self, fn, part: str):
        """``fn``, its seconds added to ``part_time[part]``."""
        def wrapper(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            self.part_time[part] = self.part_time.get(part, 0.0) + time.perf_counter() - start
            return out
        return wrapper

    def _backward_only(self, losses):
        total, _ = self.model.parse_losses(losses)
        self.model.zero_grad(set_to_none=True)
        total.backward()

    def student(self):
        self._backward(self.model.student.loss(self.inputs, self.samples))

    def teacher(self):
        t_inputs = self.inputs if self.teacher_inputs is None else self.teacher_inputs
        self.model._teacher_forward(t_inputs)
        self.model.teacher_recorder.reset()

    def distill(self):
        self._backward(self.model.loss(self.inputs, self.samples, self.teacher_inputs))

    def _fix_loss_inputs(self) -> None:
        """Each loss's arguments on this batch, its record tensors detached (the
        student's as leaves that take gradients, also kept in ``_leaves``),
        recorded once."""
        m = self.model
        m.record_step(self.inputs, self.samples, self.teacher_inputs)
        self._loss_inputs, self._leaves = {}, []
        for name in m.distill_losses:
            kwargs = m._loss_kwargs(name, self.samples)
            for arg, bound in m.loss_bindings[name].items():
                if bound[0] == 'record':
                    kwargs[arg] = [t.detach().requires_grad_(bound[1] == 'student')
                                   for t in kwargs[arg]]
                    if bound[1] == 'student':
                        self._leaves += kwargs[arg]
            self._loss_inputs[name] = kwargs
        m.student_recorder.reset()
        m.teacher_recorder.reset()

    def loss_alone(self):
        if not hasattr(self, '_loss_inputs'):
            self._fix_loss_inputs()
        terms = []
        for name, loss in self.model.distill_losses.items():
            value = loss(**self._loss_inputs[name])
            terms += list(value.values()) if isinstance(value, dict) else [value]
        self.model.zero_grad(set_to_none=True)
        for leaf in self._leaves:
            leaf.grad = None
        torch.stack(terms).sum().backward()

    def param_bytes(self, phase: str) -> int:
        m = self.model
        return dict(student=param_bytes(m.student), teacher=param_bytes(m.teacher),
                    distill=param_bytes(m.student) + param_bytes(m.teacher) +
                    param_bytes(m.distill_losses))[phase]


def minor_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(step: Step, iters: int, warmup: int, phases=TIMED, samples=None,
               faults=None, parts=None) -> dict:
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
                            parts.setdefault(f'{name}.{part}', []).append(
                                step.part_time[part])
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
    return dict(mean_seconds=mean, **extra,
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
    ratios = [d / (s + t) for d, s, t in
              zip(samples['distill'], samples['student'], samples['teacher'])]
    if len(ratios) < 2:
        return dict(median=ratios[0], q1=ratios[0], q3=ratios[0])
    q1, median, q3 = st.quantiles(ratios, n=4)
    return dict(median=st.median(ratios), q1=q1, q3=q3)


def parse_options(items) -> dict:
    """``['key=value', ...]`` -> dict, values parsed as tools/train.py's --cfg-options."""
    from mmengine.config import DictAction
    return {k: DictAction._parse_iterable(v) for k, v in (i.split('=', 1) for i in items)}


def phase_child(args) -> None:
    """``--phase``: print the memory of one step as JSON (see the module doc)."""
    step = Step.from_config(args.config[0], parse_options(args.cfg_options),
                          args.teacher_ckpt)
    fn = getattr(step, args.phase)

    def run():
        fn()
        step.model.zero_grad(set_to_none=True)
    run()   # one-time allocations (kernels' caches, lazy buffers) are not the step's
    extra = peak_extra_bytes(run)
    print(json.dumps(dict(phase=args.phase, params=step.param_bytes(args.phase),
                          activations=extra)))


def memory_steps(config, options, teacher_ckpt) -> dict:
    out = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for phase in PHASES:
        cmd = [sys.executable, osp.abspath(__file__), config, '--phase', phase]
        if teacher_ckpt:
            cmd += ['--teacher-ckpt', teacher_ckpt]
        if options:
            cmd += ['--cfg-options', *options]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode:
            sys.exit(f'memory child for {phase} of {config} failed:\n{proc.stderr[-3000:]}')
        out[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def measure(config, options, teacher_ckpt, iters, warmup, memory=True) -> dict:
    """Time and (``memory``) memory of ``config`` with ``options`` (``key=value``)."""
    step = Step.from_config(config, parse_options(options), teacher_ckpt)
    samples, faults, parts = {}, {}, {}
    mean = time_steps(step, iters, warmup, samples=samples, faults=faults, parts=parts)
    res = dict(config=config, iters=iters, threads=torch.get_num_threads(),
               batch=list(step.inputs.shape), **time_ratios(mean, samples, parts),
               minor_page_faults=faults)
    del step
    gc.collect()
    if memory:
        mem = memory_steps(config, options, teacher_ckpt)
        total = {k: v['params'] + v['activations'] for k, v in mem.items()}
        res.update(memory_bytes=mem, memory_total_bytes=total,
                   memory_distill_over_student_plus_teacher=total['distill'] /
                   (total['student'] + total['teacher']),
                   activation_memory_distill_over_student_plus_teacher=(
                       mem['distill']['activations'] /
                       (mem['student']['activations'] + mem['teacher']['activations'])))
    return res


def summary(res: dict) -> str:
    t = res['mean_seconds']
    lines = [f'{k:>8}: {1000 * v:8.1f} ms' for k, v in t.items()]
    pr = res['paired_ratio']
    lines.append(f'time   distill / (student + teacher) = '
                 f'{res["distill_over_student_plus_teacher"]:.3f} (target <= {TIME_TARGET}); '
                 f'per iteration median {pr["median"]:.3f} (quartiles {pr["q1"]:.3f}-'
                 f'{pr["q3"]:.3f})')
    lines.append(f'floor (student + teacher + loss alone) / (student + teacher) = '
                 f'{res["floor_over_student_plus_teacher"]:.3f}; Distiller overhead '
                 f'{1000 * res["overhead_seconds"]:.1f} ms')
    lines.append(f'masks / distill step = {100 * res["masks_share_of_distill_step"]:.1f} %')
    parts = parts_line(res)
    if parts:
        lines.append(parts)
    if 'memory_total_bytes' in res:
        m = res['memory_total_bytes']
        lines += [f'{k:>8}: {v / 2**20:8.1f} MiB (params '
                  f'{res["memory_bytes"][k]["params"] / 2**20:.1f})' for k, v in m.items()]
        lines.append(f'memory distill / (student + teacher) = '
                     f'{res["memory_distill_over_student_plus_teacher"]:.3f} '
                     f'(target <= {MEMORY_TARGET}); activations only '
                     f'{res["activation_memory_distill_over_student_plus_teacher"]:.3f}')
    return '\n'.join(lines)


def table(results: dict) -> str:
    """Markdown table of ``{run name: measure() result}``."""
    rows = ['| run | student ms | teacher ms | distill ms | time ratio | median per-iteration '
            'ratio (quartiles) | loss alone ms | floor | overhead ms | loss forward % | '
            'masks % | student MiB | teacher MiB | distill MiB | memory ratio | '
            'activations ratio |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for name, r in results.items():
        t, m = r['mean_seconds'], r.get('memory_total_bytes', {})
        time_ok = '' if r['distill_over_student_plus_teacher'] <= TIME_TARGET else ' ✗'
        pr = r['paired_ratio']
        cells = [name] + [f'{1000 * t[k]:.1f}' for k in PHASES] + [
            f'{r["distill_over_student_plus_teacher"]:.3f}{time_ok}',
            f'{pr["median"]:.3f} ({pr["q1"]:.3f}–{pr["q3"]:.3f})',
            f'{1000 * t["loss_alone"]:.1f}', f'{r["floor_over_student_plus_teacher"]:.3f}',
            f'{1000 * r["overhead_seconds"]:.1f}',
            f'{100 * t.get("losses", 0) / t["distill"]:.1f}',
            f'{100 * r["masks_share_of_distill_step"]:.1f}']
        if m:
            mem_ok = '' if r['memory_distill_over_student_plus_teacher'] <= MEMORY_TARGET \
                else ' ✗'
            cells += [f'{m[k] / 2**20:.1f}' for k in PHASES] + [
                f'{r["memory_distill_over_student_plus_teacher"]:.3f}{mem_ok}',
                f'{r["activation_memory_distill_over_student_plus_teacher"]:.3f}']
        else:
            cells += [''] * 5
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', nargs='*', help='Distiller config(s)')
    p.add_argument('--preset', help="every Distiller run of this tools/benchmark.py preset")
    p.add_argument('--teacher-ckpt')
    p.add_argument('--iters', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--no-memory', action='store_true', help='time only')
    p.add_argument('--json', help='one config: its result as JSON')
    p.add_argument('--out', help='stem of <out>.json and <out>.md (all configs)')
    p.add_argument('--phase', choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides, as in tools/train.py')
    args = p.parse_args()
    os.chdir(ROOT)
    if args.phase:
        return phase_child(args)
    runs = {}
    if args.preset:
        sys.path.insert(0, osp.join(ROOT, 'tools'))
        from benchmark import PRESETS, RUNS, needs_teacher
        for name in PRESETS[args.preset]:
            config, options = RUNS[name]
            if needs_teacher(config):
                runs[name] = (config, list(options))
    runs.update({osp.basename(c)[:-3]: (c, []) for c in args.config})
    if not runs:
        p.error('give a Distiller config or --preset')
    results = {}
    for name, (config, options) in runs.items():
        try:
            res = measure(config, options + args.cfg_options, args.teacher_ckpt,
                          args.iters, args.warmup, memory=not args.no_memory)
        except ValueError as err:
            sys.exit(str(err))
        results[name] = res
        print(f'== {name} ({config})\n{summary(res)}', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(next(iter(results.values())) if len(results) == 1 else results, f,
                      indent=2)
    if args.out:
        with open(args.out + '.json', 'w') as f:
            json.dump(results, f, indent=2)
        with open(args.out + '.md', 'w') as f:
            f.write(table(results) + '\n')
    if len(results) > 1:
        print(table(results))


if __name__ == '__main__':
    main()
