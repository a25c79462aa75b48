"""Images/s and peak memory of a full-size training step: plain student vs distilled.

Builds a COCO Distiller config (default ``configs/frs/frs_retina_r101_r50.py``:
RetinaNet R101 teacher -> R50 student) with random weights (the teacher's are
saved once to a temporary file; nothing is downloaded) and, on a batch of
``--batch`` random 1333x800 images with 7 random boxes each (the batch of
``tools/compare_mmrazor_step.py --pair full``), times interleaved:

* ``student``: the plain student's forward + losses + backward;
* ``teacher``: the teacher forward the Distiller runs (no grad);
* ``distill``: the Distiller's step (teacher forward, student, losses, backward);
* ``loss_alone``: the distillation losses' forward + backward on fixed records.

and reports images/s of the student and distill steps, the time ratio
``distill / (student + teacher)``, its floor and the Distiller's overhead as
``tools/measure_cost.py`` does and, on CUDA, ``torch.cuda.max_memory_allocated``
of each step: for ``distill`` everything; for ``student`` minus the teacher's
and the losses' weights, which stay allocated but a plain student run would
not hold. Random weights do not change the work.

    python tools/measure_throughput.py --device cuda            # the GPU check of issue 6
    python tools/measure_throughput.py configs/pkd/pkd_retina_r101_r50.py --device cuda
    # the teacher forward alone, NCHW against channels-last (teacher_channels_last)
    python tools/measure_throughput.py --device cpu --teacher-layouts --iters 6 --warmup 1
    python tools/measure_throughput.py configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py \
        --device cpu --teacher-layouts --batch 8 --size 128 128 --iters 40
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))


def build(config: str, options=None):
    """The config's Distiller with a random teacher (saved to a temp file);
    ``options``: extra Distiller arguments."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmkd_det  # noqa: F401
    from mmkd_det.models.distillers import load_model_cfg
    from mmkd_det.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg.model.get('type') != 'Distiller':
        sys.exit(f'{config} is not a distillation config; give a Distiller config.')
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        torch.manual_seed(0)
        teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
        ckpt = osp.join(tempfile.mkdtemp(), 'teacher_random.pth')
        torch.save(dict(state_dict=teacher.state_dict()), ckpt)
        del teacher
        cfg.model.teacher_ckpt = ckpt
        cfg.model.update(options or {})
        return MODELS.build(cfg.model)


def teacher_layouts(step, args) -> None:
    """Median seconds of the teacher forward with ``teacher_channels_last`` False
    and True, interleaved; the records of both are compared too."""
    import statistics as st
    import time

    import torch
    model, x = step.model, step.teacher_inputs
    x = step.inputs if x is None else x
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = {False: [], True: []}
    records = {}
    for it in range(args.warmup + args.iters):
        for flag in times:
            model.teacher_channels_last = flag
            sync()
            start = time.perf_counter()
            model._teacher_forward(x)
            sync()
            if it >= args.warmup:
                times[flag].append(time.perf_counter() - start)
            records[flag] = {k: model.teacher_recorder.get(k)
                             for k in model.teacher_recorder.specs}
            model.teacher_recorder.reset()
    error = max(((a - b).abs().max() / b.abs().max()).item()
                for k in records[False] for a, b in zip(records[True][k], records[False][k]))
    med = {('channels_last' if k else 'nchw'): st.median(v) for k, v in times.items()}
    res = dict(config=args.config, device=args.device, batch=list(x.shape),
               threads=torch.get_num_threads(), iters=args.iters, median_seconds=med,
               seconds={('channels_last' if k else 'nchw'): v for k, v in times.items()},
               channels_last_over_nchw=med['channels_last'] / med['nchw'],
               max_relative_record_difference=error)
    print(f'teacher forward: NCHW {1000 * med["nchw"]:.1f} ms, channels-last '
          f'{1000 * med["channels_last"]:.1f} ms (median of {args.iters}); ratio '
          f'{res["channels_last_over_nchw"]:.3f}; records differ by {error:.1e} (relative)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


def main():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', nargs='?', default='configs/frs/frs_retina_r101_r50.py')
    p.add_argument('--device', default='cuda')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                   help='image size (default 1333x800)')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--json')
    p.add_argument('--distiller-options', nargs='+', action=DictAction, default={},
                   help='extra Distiller arguments, e.g. inplace_activations=disable')
    p.add_argument('--keep-heap', action='store_true',
                   help='keep freed memory in the process (mmkd_det.apis.keep_freed_memory)')
    p.add_argument('--teacher-layouts', action='store_true',
                   help='time only the Distiller\'s teacher forward, NCHW and channels-last '
                        'input interleaved (the teacher_channels_last option)')
    args = p.parse_args()
    os.chdir(ROOT)
    import torch
    from compare_mmrazor_step import full_pair

    from mmkd_det.apis import keep_freed_memory
    if args.keep_heap and not keep_freed_memory():
        sys.exit('--keep-heap: the C library has no mallopt (not glibc).')
    from measure_cost import Step, param_bytes, parts_line, time_ratios, time_steps

    if args.device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device visible to torch; use --device cpu.')
    model = build(args.config, args.distiller_options).to(args.device)
    head = getattr(model.student, 'bbox_head', None)
    *_, data = full_pair(args.batch, tuple(args.size),
                         num_classes=getattr(head, 'num_classes', 80))
    step = Step(model, data)
    if args.teacher_layouts:
        return teacher_layouts(step, args)
    samples, faults, parts = {}, {}, {}
    mean = time_steps(step, args.iters, args.warmup, samples=samples, faults=faults,
                      parts=parts)
    res = dict(config=args.config, device=args.device, batch=list(step.inputs.shape),
               threads=torch.get_num_threads(), iters=args.iters,
               distiller_options=args.distiller_options, keep_heap=args.keep_heap,
               images_per_s={k: args.batch / mean[k] for k in ('student', 'distill')},
               distill_over_student_time=mean['distill'] / mean['student'],
               **time_ratios(mean, samples, parts), minor_page_faults=faults)
    if args.device.startswith('cuda'):
        res['device_name'] = torch.cuda.get_device_name()
        peak = {}
        for name in ('student', 'distill'):
            step.model.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            getattr(step, name)()
            torch.cuda.synchronize()
            peak[name] = torch.cuda.max_memory_allocated()
        peak['student'] -= param_bytes(model.teacher) + param_bytes(model.distill_losses)
        res['max_memory_allocated_bytes'] = peak
        res['distill_over_student_memory'] = peak['distill'] / peak['student']
    for k in ('student', 'distill'):
        mem = res.get('max_memory_allocated_bytes', {}).get(k)
        print(f'{k:>8}: {1000 * mean[k]:8.1f} ms/step, {res["images_per_s"][k]:6.2f} images/s'
              + (f', {mem / 2**30:.2f} GiB max allocated' if mem else ''))
    print(f'teacher: {1000 * mean["teacher"]:8.1f} ms/forward')
    print(f'distill / student time = {res["distill_over_student_time"]:.3f}; '
          f'distill / (student + teacher) = {res["distill_over_student_plus_teacher"]:.3f} '
          f'(per-iteration median {res["paired_ratio"]["median"]:.3f}); floor with the '
          f'losses alone {res["floor_over_student_plus_teacher"]:.3f}, Distiller overhead '
          f'{res["overhead_seconds"]:.2f} s')
    print(parts_line(res))
    print('minor page faults per step: ' + ', '.join(f'{k} {v / 1e3:.0f}k' for k, v in
                                                      faults.items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
