"""Time one PKD distillation step: mmkd_det's Distiller against mmrazor 1.0.0's
``SingleTeacherDistill`` on the same models, weights and batch.

Both wrap the same student and teacher (built from the synthetic RetinaNet
configs; the student has the teacher's width so PKD needs no adapter, as in
mmrazor's configs) and compute the student's losses plus PKD on the four FPN
levels. The steps (forward + backward) are interleaved on one fixed training
batch; the PKD values are printed side by side as a check that both compute the
same thing. mmrazor's ``SingleTeacherDistill`` runs the teacher's whole
``loss`` (its head and its losses, discarded); the Distiller runs only the
teacher's backbone and neck. (mmrazor's ``FpnTeacherDistill`` would skip the
teacher head too; the issue names ``SingleTeacherDistill``.)

    python tools/compare_mmrazor_step.py --teacher-ckpt work_dirs/demo/teacher/epoch_10.pth
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics as st
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
TEACHER = 'configs/synthetic/retinanet_r18w48_synthetic.py'


def main():
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--teacher-ckpt', default='work_dirs/demo/teacher/epoch_10.pth')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--loss-weight', type=float, default=10.0)
    p.add_argument('--json')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='overrides of the RetinaNet config (e.g. the data root)')
    args = p.parse_args()
    os.chdir(ROOT)
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    import mmkd_det  # noqa: F401
    from mmkd_det.compat import import_mmrazor_models
    from mmkd_det.registry import MODELS
    import_mmrazor_models()
    from mmrazor.registry import MODELS as RAZOR_MODELS

    cfg = Config.fromfile(TEACHER)
    cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model
    levels = [0, 1, 2, 3]
    ours_cfg = dict(type='Distiller', student=copy.deepcopy(model_cfg),
                    teacher=copy.deepcopy(model_cfg), teacher_ckpt=args.teacher_ckpt,
                    recorders=dict(fpn=dict(source='neck', levels=levels)),
                    distill_losses=dict(loss_pkd=dict(type='PKDLoss',
                                                      loss_weight=args.loss_weight)))
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        torch.manual_seed(0)
        ours = MODELS.build(ours_cfg)
        loader = Runner.build_dataloader(dict(cfg.train_dataloader,
                                              num_workers=0, persistent_workers=False))
        data = next(iter(loader))

    def mmdet(cfg):
        return dict(copy.deepcopy(cfg.to_dict()), _scope_='mmdet')
    razor_cfg = dict(
        type='SingleTeacherDistill',
        architecture=mmdet(model_cfg), teacher=mmdet(model_cfg),
        teacher_ckpt=args.teacher_ckpt,
        distiller=dict(
            type='ConfigurableDistiller',
            student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            distill_losses={f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=args.loss_weight)
                            for i in levels},
            loss_forward_mappings={f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i)) for i in levels}))
    with DefaultScope.overwrite_default_scope('mmrazor'):
        razor = RAZOR_MODELS.build(razor_cfg)
    razor.student.load_state_dict(ours.student.state_dict())  # same student weights
    ours.train()
    razor.train()
    batch = ours.data_preprocessor(copy.deepcopy(data), True)
    inputs, samples = batch['inputs'], batch['data_samples']
    r_batch = razor.data_preprocessor(copy.deepcopy(data), True)

    def step(model, x, s):
        losses = model.loss(x, s)
        total, _ = model.parse_losses(losses)
        model.zero_grad(set_to_none=True)
        total.backward()
        return losses

    check = step(ours, inputs, samples)['distill.loss_pkd'].item()
    r_losses = step(razor, r_batch['inputs'], r_batch['data_samples'])
    r_check = sum(v.item() for k, v in r_losses.items() if 'loss_pkd' in k)
    times = dict(mmkd_det=[], mmrazor=[])
    for it in range(args.warmup + args.iters):
        for name, fn in (('mmkd_det', lambda: step(ours, inputs, samples)),
                         ('mmrazor', lambda: step(razor, r_batch['inputs'],
                                                  r_batch['data_samples']))):
            start = time.perf_counter()
            fn()
            if it >= args.warmup:
                times[name].append(time.perf_counter() - start)
    mean = {k: st.mean(v) for k, v in times.items()}
    res = dict(threads=torch.get_num_threads(), batch=list(inputs.shape), iters=args.iters,
               pkd_value=dict(mmkd_det=check, mmrazor=r_check), mean_seconds=mean,
               ratio_mmkd_det_over_mmrazor=mean['mmkd_det'] / mean['mmrazor'])
    print(f'PKD on the first batch: mmkd_det {check:.6f}, mmrazor {r_check:.6f}')
    for k, v in mean.items():
        print(f'{k:>9}: {1000 * v:8.1f} ms per step')
    print(f'mmkd_det / mmrazor = {res["ratio_mmkd_det_over_mmrazor"]:.3f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=2)


if __name__ == '__main__':
    main()
