"""Gradient norm of each loss term on the student's parameters, for a few batches.

A distillation loss's value says little about how hard it pulls on the student
(an L2 norm and a squared error of the same features differ by orders of
magnitude in value); this prints, per batch, the value of the task loss and of
every distillation term and the norm of its gradient on the student's trainable
parameters, so loss weights can be compared with the task loss directly.

    python tools/grad_norms.py configs/skd/skd_retina_r18w48_r18w32_synthetic.py \
        --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth \
        --checkpoint work_dirs/benchmark/SKD/seed0/epoch_5.pth --batches 3
"""
import argparse
import json
import os
import os.path as osp
import statistics as st
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('--teacher-ckpt')
    p.add_argument('--checkpoint', help='a Distiller checkpoint of a run (default: the '
                   'freshly initialised student)')
    p.add_argument('--batches', type=int, default=3)
    p.add_argument('--json')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = p.parse_args()
    os.chdir(ROOT)
    import torch
    from mmengine.logging import MessageHub
    from mmengine.registry import DefaultScope

    from mmkd_det.apis import build_distiller, build_loader
    from mmkd_det.compat import load_checkpoint_file
    try:
        cfg, model = build_distiller(args.config, args.cfg_options, args.teacher_ckpt)
    except ValueError as err:
        sys.exit(str(err))
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        model.init_weights()
    loader = build_loader(cfg.train_dataloader, seed=0)
    if args.checkpoint:
        state = load_checkpoint_file(args.checkpoint, map_location='cpu')
        model.load_state_dict(state.get('state_dict', state), strict=True)
    model.train()
    MessageHub.get_current_instance().update_info('iter', 10 ** 9)  # past any warm-up
    params = [q for q in model.student.parameters() if q.requires_grad]
    rows = {}
    for _, data in zip(range(args.batches), loader):
        batch = model.data_preprocessor(data, True)
        losses = model.loss(batch['inputs'], batch['data_samples'])
        groups = {'task': model.parse_losses(
            {k: v for k, v in losses.items() if not k.startswith('distill')})[0]}
        groups.update({k: v for k, v in losses.items() if k.startswith('distill.')})
        for name, value in groups.items():
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
            rows.setdefault(name, []).append((value.item(), norm.item()))
    task_norm = st.mean(n for _, n in rows['task'])
    print(f'{"term":32s} {"value":>10s} {"grad norm":>10s} {"/ task":>8s}')
    out = {}
    for name, vals in rows.items():
        value, norm = st.mean(v for v, _ in vals), st.mean(n for _, n in vals)
        out[name] = dict(value=value, grad_norm=norm, grad_norm_over_task=norm / task_norm)
        print(f'{name:32s} {value:10.4g} {norm:10.4g} {norm / task_norm:8.3g}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           batches=args.batches, terms=out), f, indent=2)


if __name__ == '__main__':
    main()
