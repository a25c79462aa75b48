"""Time a distillation training step against its parts, on one fixed batch.

For a Distiller config, on the same batch, repeated and interleaved:

* ``student``: plain student forward + losses + backward;
* ``teacher``: the teacher forward the Distiller runs (backbone, neck, heads
  it records), no grad;
* ``distill``: the Distiller's full training forward + backward;
* ``masks``: time inside the losses' ``masks`` (mask construction), part of
  ``distill``.

Prints mean times and the ratios ``distill / (student + teacher)`` and
``masks / distill``; ``--json`` writes them.

    python tools/measure_cost.py configs/synthetic/tid_retina_r18w48_r18w32_synthetic.py \
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth --iters 30
"""
import argparse
import json
import os
import os.path as osp
import statistics as st
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--teacher-ckpt')
    p.add_argument('--iters', type=int, default=30)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--json')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='key=value overrides, as in tools/train.py')
    args = p.parse_args()
    os.chdir(ROOT)
    import torch
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmkd_det.apis import build_distiller
    try:
        cfg, model = build_distiller(args.config, args.cfg_options, args.teacher_ckpt)
    except ValueError as err:
        sys.exit(str(err))
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        loader = Runner.build_dataloader(dict(cfg.train_dataloader, num_workers=0,
                                              persistent_workers=False))
        data = next(iter(loader))
    model.train()
    batch = model.data_preprocessor(data, True)
    inputs, samples = batch['inputs'], batch['data_samples']
    t_inputs = batch.get('teacher_inputs')
    t_inputs = inputs if t_inputs is None else t_inputs

    mask_time = [0.0]
    for loss in model.distill_losses.values():
        if hasattr(loss, 'masks'):
            orig = loss.masks

            def timed(*a, _orig=orig, **k):
                start = time.perf_counter()
                out = _orig(*a, **k)
                mask_time[0] += time.perf_counter() - start
                return out
            loss.masks = timed

    def backward(losses):
        total, _ = model.parse_losses(losses)
        model.zero_grad(set_to_none=True)
        total.backward()

    def run_student():
        backward(model.student.loss(inputs, samples))

    def run_teacher():
        model._teacher_forward(t_inputs)
        model.teacher_recorder.reset()

    def run_distill():
        backward(model.loss(inputs, samples, batch.get('teacher_inputs')))

    times = {k: [] for k in ('student', 'teacher', 'distill', 'masks')}
    for it in range(args.warmup + args.iters):
        for name, fn in (('student', run_student), ('teacher', run_teacher),
                         ('distill', run_distill)):
            mask_time[0] = 0.0
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if it >= args.warmup:
                times[name].append(elapsed)
                if name == 'distill':
                    times['masks'].append(mask_time[0])
    mean = {k: st.mean(v) for k, v in times.items()}
    res = dict(config=args.config, iters=args.iters, threads=torch.get_num_threads(),
               batch=list(inputs.shape), mean_seconds=mean,
               distill_over_student_plus_teacher=mean['distill'] /
               (mean['student'] + mean['teacher']),
               masks_share_of_distill_step=mean['masks'] / mean['distill'])
    for k, v in mean.items():
        print(f'{k:>8}: {1000 * v:8.1f} ms')
    print(f'distill / (student + teacher) = {res["distill_over_student_plus_teacher"]:.3f}')
    print(f'masks / distill step          = {100 * res["masks_share_of_distill_step"]:.1f} %')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
