"""Images/s and peak memory of a full-size training step: plain student vs distilled.

:func:`random_teacher_distiller` builds a COCO Distiller config (e.g.
``configs/frs/frs_retina_r101_r50.py``: RetinaNet R101 teacher -> R50 student)
with random weights (the teacher's are saved once to a temporary file; nothing
is downloaded). :func:`measure_throughput` then times, on a batch of random
images with 7 random boxes each (:func:`mmkd_det.analysis.mmrazor_step.full_pair`),
interleaved:

* ``student``: the plain student's forward + losses + backward;
* ``teacher``: the teacher forward the Distiller runs (no grad);
* ``distill``: the Distiller's step (teacher forward, student, losses, backward);
* ``loss_alone``: the distillation losses' forward + backward on fixed records.

and reports images/s of the student and distill steps, the time ratio
``distill / (student + teacher)``, its floor and the Distiller's overhead as
:mod:`mmkd_det.analysis.cost` does and, on CUDA, ``torch.cuda.max_memory_allocated``
of each step, measured after the records fixed for ``loss_alone`` are dropped:
for ``distill`` everything; for ``student`` minus the teacher's and the losses'
weights, which stay allocated but a plain student run would not hold; for
``teacher`` minus the student's and the losses' weights. Several configs in one
process: :meth:`Step.release` each step before building the next, or the
previous model, freed only by the garbage collector, may count in the next peak.
With ``amp`` every step runs under autocast (float16 and a gradient scaler on CUDA,
as ``tools/train.py --amp``). Random weights do not change the work. :func:`teacher_layouts` times
the teacher forward alone, NCHW against channels-last input.

The command line is ``tools/analysis_tools/measure_throughput.py``.
"""
import os.path as osp
import statistics as st
import tempfile
import time
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .mmrazor_step import full_pair
from .timing import Step, param_bytes, parts_line, time_ratios, time_steps


def random_teacher_distiller(config: str, options: Optional[dict] = None):
    """The config's Distiller with a random teacher (saved to a temp file).

    Args:
        config (str): a Distiller config.
        options (dict, optional): extra Distiller arguments.

    Raises:
        ValueError: the config's model is not a Distiller.
    """
    import mmkd_det  # noqa: F401
    from mmkd_det.models.distillers import load_model_cfg
    from mmkd_det.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg.model.get('type') != 'Distiller':
        raise ValueError(f'{config} is not a distillation config; give a Distiller config.')
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        torch.manual_seed(0)
        teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
        ckpt = osp.join(tempfile.mkdtemp(), 'teacher_random.pth')
        torch.save(dict(state_dict=teacher.state_dict()), ckpt)
        del teacher
        cfg.model.teacher_ckpt = ckpt
        cfg.model.update(options or {})
        return MODELS.build(cfg.model)


def full_size_step(config: str,
                   device: str,
                   batch: int,
                   size: Sequence[int],
                   distiller_options: Optional[dict] = None,
                   amp: bool = False) -> Step:
    """:class:`Step` of :func:`random_teacher_distiller` on ``device`` with a batch
    of ``batch`` random images of ``size`` (H, W); ``amp``: the steps run under
    autocast (:class:`~mmkd_det.analysis.timing.Step`)."""
    model = random_teacher_distiller(config, distiller_options).to(device)
    head = getattr(model.student, 'bbox_head', None)
    *_, data = full_pair(batch, tuple(size), num_classes=getattr(head, 'num_classes', 80))
    return Step(model, data, amp=amp)


def teacher_layouts(step: Step,
                    iters: int,
                    warmup: int,
                    config: Optional[str] = None,
                    device: Optional[str] = None) -> dict:
    """Median seconds of the teacher forward with ``teacher_channels_last`` False
    and True, interleaved; the records of both are compared too. ``config`` and
    ``device`` are only recorded in the result."""
    model, x = step.model, step.teacher_inputs
    x = step.inputs if x is None else x
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = {False: [], True: []}
    records = {}
    for it in range(warmup + iters):
        for flag in times:
            model.teacher_channels_last = flag
            sync()
            start = time.perf_counter()
            model._teacher_forward(x)
            sync()
            if it >= warmup:
                times[flag].append(time.perf_counter() - start)
            records[flag] = {k: model.teacher_recorder.get(k) for k in model.teacher_recorder.specs}
            model.teacher_recorder.reset()
    error = max(((a - b).abs().max() / b.abs().max()).item() for k in records[False]
                for a, b in zip(records[True][k], records[False][k]))
    med = {('channels_last' if k else 'nchw'): st.median(v) for k, v in times.items()}
    return dict(
        config=config,
        device=device,
        batch=list(x.shape),
        threads=torch.get_num_threads(),
        iters=iters,
        median_seconds=med,
        seconds={
            ('channels_last' if k else 'nchw'): v
            for k, v in times.items()
        },
        channels_last_over_nchw=med['channels_last'] / med['nchw'],
        max_relative_record_difference=error)


def teacher_layouts_summary(res: dict) -> str:
    """The line printed for a :func:`teacher_layouts` result."""
    med = res['median_seconds']
    return (f'teacher forward: NCHW {1000 * med["nchw"]:.1f} ms, channels-last '
            f'{1000 * med["channels_last"]:.1f} ms (median of {res["iters"]}); ratio '
            f'{res["channels_last_over_nchw"]:.3f}; records differ by '
            f'{res["max_relative_record_difference"]:.1e} (relative)')


def measure_throughput(step: Step,
                       iters: int,
                       warmup: int,
                       config: Optional[str] = None,
                       device: Optional[str] = None,
                       distiller_options: Optional[dict] = None,
                       keep_heap: bool = False) -> dict:
    """Time the steps of ``step`` (module doc); on CUDA also the peak memory.
    ``config``, ``device``, ``distiller_options`` and ``keep_heap`` are only
    recorded in the result."""
    samples, faults, parts = {}, {}, {}
    mean = time_steps(step, iters, warmup, samples=samples, faults=faults, parts=parts)
    batch = step.inputs.shape[0]
    res = dict(
        config=config,
        device=device,
        batch=list(step.inputs.shape),
        threads=torch.get_num_threads(),
        iters=iters,
        distiller_options=distiller_options or {},
        keep_heap=keep_heap,
        amp=step.amp,
        images_per_s={k: batch / mean[k]
                      for k in ('student', 'distill')},
        distill_over_student_time=mean['distill'] / mean['student'],
        **time_ratios(mean, samples, parts),
        minor_page_faults=faults,
        loss_input_bytes=step.loss_input_bytes())
    if step.inputs.is_cuda:
        res['device_name'] = torch.cuda.get_device_name()
        peak = {}
        # the records loss_alone fixed are the timing's, not any step's
        step.drop_loss_inputs()
        for name in ('student', 'teacher', 'distill'):
            step.model.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            getattr(step, name)()
            torch.cuda.synchronize()
            peak[name] = torch.cuda.max_memory_allocated()
        # the student step holds the teacher's and the losses' weights, which a plain
        # run would not; the teacher forward holds the student's and the losses'
        m = step.model
        peak['student'] -= param_bytes(m.teacher) + param_bytes(m.distill_losses)
        peak['teacher'] -= param_bytes(m.student) + param_bytes(m.distill_losses)
        res['max_memory_allocated_bytes'] = peak
        res['distill_over_student_memory'] = peak['distill'] / peak['student']
    return res


def throughput_summary(res: dict) -> str:
    """The lines printed for a :func:`measure_throughput` result."""
    mean = res['mean_seconds']
    lines = []
    for k in ('student', 'distill'):
        mem = res.get('max_memory_allocated_bytes', {}).get(k)
        lines.append(f'{k:>8}: {1000 * mean[k]:8.1f} ms/step, '
                     f'{res["images_per_s"][k]:6.2f} images/s' +
                     (f', {mem / 2**30:.2f} GiB max allocated' if mem else ''))
    mem = res.get('max_memory_allocated_bytes', {}).get('teacher')
    lines.append(f'teacher: {1000 * mean["teacher"]:8.1f} ms/forward' +
                 (f', {mem / 2**30:.2f} GiB max allocated' if mem else '') +
                 (' (autocast)' if res.get('amp') else ''))
    lines.append(f'distill / student time = {res["distill_over_student_time"]:.3f}; '
                 f'distill / (student + teacher) = '
                 f'{res["distill_over_student_plus_teacher"]:.3f} (per-iteration median '
                 f'{res["paired_ratio"]["median"]:.3f}); floor with the losses alone '
                 f'{res["floor_over_student_plus_teacher"]:.3f}, Distiller overhead '
                 f'{res["overhead_seconds"]:.2f} s')
    lines.append(parts_line(res))
    lines.append('minor page faults per step: ' +
                 ', '.join(f'{k} {v / 1e3:.0f}k' for k, v in res['minor_page_faults'].items()))
    return '\n'.join(lines)


def throughput_table(results: dict) -> str:
    """Markdown table of ``{config: measure_throughput() result}``: images/s of the
    student and distill steps, the teacher forward's ms, the time ratios and, on
    CUDA, the peak memory of each step in GiB."""
    rows = [
        '| config | device | batch | autocast | student img/s | distill img/s | teacher ms | '
        'distill / student | distill / (student + teacher) | student GiB | teacher GiB | '
        'distill GiB |', '|---|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    for config, r in results.items():
        mem = r.get('max_memory_allocated_bytes', {})
        gib = [
            f'{mem[k] / 2**30:.2f}' if k in mem else '—' for k in ('student', 'teacher', 'distill')
        ]
        cells = [
            osp.basename(config),
            r.get('device_name',
                  r['device']), 'x'.join(map(str, r['batch'])), 'yes' if r.get('amp') else 'no',
            f'{r["images_per_s"]["student"]:.2f}', f'{r["images_per_s"]["distill"]:.2f}',
            f'{1000 * r["mean_seconds"]["teacher"]:.1f}', f'{r["distill_over_student_time"]:.3f}',
            f'{r["distill_over_student_plus_teacher"]:.3f}', *gib
        ]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def read_throughput_runs(paths: Sequence[str]) -> list:
    """The ``{config: result}`` files that ``--out`` wrote, one per run (JSON only).

    Raises:
        ValueError: a file is not JSON or not such a file; the message names it.
    """
    from mmkd_det.apis import read_json

    def valid(run):
        return isinstance(run, dict) and all(
            isinstance(r, dict) and 'images_per_s' in r for r in run.values())

    return [
        read_json(
            path, valid, 'a {config: result} file',
            'give the <out>.json of a run with --out (one --json result holds a single '
            'config).') for path in paths
    ]


def throughput_repeats_table(runs: Sequence[dict]) -> str:
    """Markdown table over repeated runs of the same configs (each run a
    ``{config: measure_throughput() result}``, as ``--out`` writes): per config and
    precision, the median and the min–max over the runs of each step's images/s, of
    ``distill / (student + teacher)`` and, on CUDA, of each step's peak memory in GiB.
    The spread of the plain student step, the same in every row of a run, is the
    timing noise the differences between methods must clear."""
    if not runs:
        raise ValueError('throughput_repeats_table: give at least one run')
    groups: dict = {}
    for run in runs:
        for config, r in run.items():
            groups.setdefault((config, bool(r.get('amp'))), []).append(r)
    rows = [
        '| config | autocast | runs | student img/s | distill img/s | '
        'distill / (student + teacher) | student GiB | teacher GiB | distill GiB |',
        '|---|---|---|---|---|---|---|---|---|'
    ]

    def cell(values, fmt):
        lo, hi = min(values), max(values)
        return f'{st.median(values):{fmt}} ({lo:{fmt}}–{hi:{fmt}})'

    for (config, amp), rs in groups.items():
        cells = [osp.basename(config), 'yes' if amp else 'no', str(len(rs))]
        cells += [cell([r['images_per_s'][k] for r in rs], '.1f') for k in ('student', 'distill')]
        cells.append(cell([r['distill_over_student_plus_teacher'] for r in rs], '.2f'))
        for k in ('student', 'teacher', 'distill'):
            mem = [
                r['max_memory_allocated_bytes'][k] / 2**30 for r in rs
                if k in r.get('max_memory_allocated_bytes', {})
            ]
            cells.append(cell(mem, '.2f') if mem else '—')
        rows.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)
