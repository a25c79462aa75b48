"""Train a detector or a Distiller: the same flags as mmdet's tools/train.py."""
import sys

import torch
from mmengine.runner import Runner

import mmkd_det  # noqa: F401  (compat patches, registries)
from mmkd_det.apis import (PreflightError, add_checkpoint_checks, add_keep_heap_arg,
                           apply_keep_heap, check_config, finish_distributed, is_main_process_env,
                           load_config, parse_runner_args, run_dataset_check, runner_parser)


def parse_args():
    parser = runner_parser('Train a (distilled) detector', 'train config file path',
                           'the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by batch')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or the latest one')
    parser.add_argument(
        '--skip-dataset-check',
        action='store_true',
        help='do not read the annotation files before training (the cheap dataset check; '
        'tools/misc/check_dataset.py runs the full one)')
    add_keep_heap_arg(parser)
    return parse_runner_args(parser)


def main():
    args = parse_args()
    apply_keep_heap(args.keep_heap, on_missing='warn')
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir, args.overlay)
    if args.amp:
        if not torch.cuda.is_available():
            sys.exit('[mmkd_det] --amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper runs on '
                     'gpu, npu, mlu or musa only); drop --amp to train in fp32 on this machine.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('config has no auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    try:
        check_config(cfg)
        if not args.skip_dataset_check:
            run_dataset_check(cfg, full=False, verbose=is_main_process_env())
    except PreflightError as err:
        sys.exit(f'[mmkd_det] {err}')
    runner = Runner.from_cfg(cfg)
    # load_from / resume: refuse a checkpoint of another kind or architecture; load_from may
    # fine-tune to other shapes (e.g. num_classes), resume never
    add_checkpoint_checks(runner, allow_shape_mismatch=True)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
