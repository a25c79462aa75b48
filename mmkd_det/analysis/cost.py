"""Time and memory of a distillation training step against its parts, on one fixed batch.

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

Memory: each step runs in its own child process (``python -m
mmkd_det.analysis.cost CONFIG --phase P``). The child
builds the Distiller, runs the step once, frees the gradients, trims the heap
(``malloc_trim``; large blocks are mmap-ed, ``MALLOC_MMAP_THRESHOLD_``, so a
free returns them), resets the peak RSS (``/proc/self/clear_refs``) and runs
the step twice more. A step's memory = bytes of the parameters it uses
(student; teacher; student + teacher + the losses' adapters) + its peak RSS
above the state before it (activations, gradients, workspace), what
``torch.cuda.max_memory_allocated`` would count on a GPU. Ratio
``distill / (student + teacher)`` (target <= 1.10); the activations-only
ratio is reported too.

The command line is ``tools/analysis_tools/measure_cost.py``.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
from typing import Optional, Sequence

import torch

from .timing import PHASES, Step, parts_line, peak_extra_bytes, time_ratios, time_steps

TIME_TARGET, MEMORY_TARGET = 1.05, 1.10


def parse_options(items) -> dict:
    """``['key=value', ...]`` -> dict, values parsed as tools/train.py's --cfg-options."""
    from mmengine.config import DictAction
    return {k: DictAction._parse_iterable(v) for k, v in (i.split('=', 1) for i in items)}


def phase_memory(config: str, options: Sequence[str], teacher_ckpt: Optional[str],
                 phase: str) -> dict:
    """The memory of one step in this process (see the module doc): ``params``
    and ``activations`` bytes. Meant for a fresh process (:func:`memory_steps`)."""
    step = Step.from_config(config, parse_options(options), teacher_ckpt)
    fn = getattr(step, phase)

    def run():
        fn()
        step.model.zero_grad(set_to_none=True)

    run()  # one-time allocations (kernels' caches, lazy buffers) are not the step's
    extra = peak_extra_bytes(run)
    return dict(phase=phase, params=step.param_bytes(phase), activations=extra)


def memory_steps(config, options, teacher_ckpt) -> dict:
    """:func:`phase_memory` of each of :data:`PHASES`, each in its own child
    process (``python -m mmkd_det.analysis.cost``) with large blocks mmap-ed."""
    out = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    for phase in PHASES:
        cmd = [sys.executable, '-m', 'mmkd_det.analysis.cost', config, '--phase', phase]
        if teacher_ckpt:
            cmd += ['--teacher-ckpt', teacher_ckpt]
        if options:
            cmd += ['--cfg-options', *options]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise RuntimeError(
                f'memory child for {phase} of {config} failed:\n{proc.stderr[-3000:]}')
        out[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def measure(config, options, teacher_ckpt, iters, warmup, memory=True) -> dict:
    """Time and (``memory``) memory of ``config`` with ``options`` (``key=value``)."""
    step = Step.from_config(config, parse_options(options), teacher_ckpt)
    samples, faults, parts = {}, {}, {}
    mean = time_steps(step, iters, warmup, samples=samples, faults=faults, parts=parts)
    res = dict(
        config=config,
        iters=iters,
        threads=torch.get_num_threads(),
        batch=list(step.inputs.shape),
        **time_ratios(mean, samples, parts),
        minor_page_faults=faults)
    del step
    gc.collect()
    if memory:
        mem = memory_steps(config, options, teacher_ckpt)
        total = {k: v['params'] + v['activations'] for k, v in mem.items()}
        res.update(
            memory_bytes=mem,
            memory_total_bytes=total,
            memory_distill_over_student_plus_teacher=total['distill'] /
            (total['student'] + total['teacher']),
            activation_memory_distill_over_student_plus_teacher=(
                mem['distill']['activations'] /
                (mem['student']['activations'] + mem['teacher']['activations'])))
    return res


def summary(res: dict) -> str:
    """The lines printed for one :func:`measure` result."""
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
        lines += [
            f'{k:>8}: {v / 2**20:8.1f} MiB (params '
            f'{res["memory_bytes"][k]["params"] / 2**20:.1f})' for k, v in m.items()
        ]
        lines.append(f'memory distill / (student + teacher) = '
                     f'{res["memory_distill_over_student_plus_teacher"]:.3f} '
                     f'(target <= {MEMORY_TARGET}); activations only '
                     f'{res["activation_memory_distill_over_student_plus_teacher"]:.3f}')
    return '\n'.join(lines)


def table(results: dict) -> str:
    """Markdown table of ``{run name: measure() result}``."""
    rows = [
        '| run | student ms | teacher ms | distill ms | time ratio | median per-iteration '
        'ratio (quartiles) | loss alone ms | floor | overhead ms | loss forward % | '
        'masks % | student MiB | teacher MiB | distill MiB | memory ratio | '
        'activations ratio |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    for name, r in results.items():
        t, m = r['mean_seconds'], r.get('memory_total_bytes', {})
        time_ok = '' if r['distill_over_student_plus_teacher'] <= TIME_TARGET else ' ✗'
        pr = r['paired_ratio']
        cells = [name] + [f'{1000 * t[k]:.1f}' for k in PHASES] + [
            f'{r["distill_over_student_plus_teacher"]:.3f}{time_ok}',
            f'{pr["median"]:.3f} ({pr["q1"]:.3f}–{pr["q3"]:.3f})', f'{1000 * t["loss_alone"]:.1f}',
            f'{r["floor_over_student_plus_teacher"]:.3f}', f'{1000 * r["overhead_seconds"]:.1f}',
            f'{100 * t.get("losses", 0) / t["distill"]:.1f}',
            f'{100 * r["masks_share_of_distill_step"]:.1f}'
        ]
        if m:
            mem_ok = '' if r['memory_distill_over_student_plus_teacher'] <= MEMORY_TARGET \
                else ' ✗'
            cells += [f'{m[k] / 2**20:.1f}' for k in PHASES] + [
                f'{r["memory_distill_over_student_plus_teacher"]:.3f}{mem_ok}',
                f'{r["activation_memory_distill_over_student_plus_teacher"]:.3f}'
            ]
        else:
            cells += [''] * 5
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def _phase_child() -> None:
    """``python -m mmkd_det.analysis.cost CONFIG --phase P``: print the memory of
    one step as JSON (run by :func:`memory_steps`)."""
    p = argparse.ArgumentParser(description=_phase_child.__doc__)
    p.add_argument('config')
    p.add_argument('--phase', choices=PHASES, required=True)
    p.add_argument('--teacher-ckpt')
    p.add_argument('--cfg-options', nargs='+', default=[])
    args = p.parse_args()
    print(json.dumps(phase_memory(args.config, args.cfg_options, args.teacher_ckpt, args.phase)))


if __name__ == '__main__':
    _phase_child()
