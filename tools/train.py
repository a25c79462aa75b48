"""Train a detector or a Distiller: the same flags as mmdet's tools/train.py."""
import sys

import torch
from mmengine.runner import Runner

import mmkd_det  # noqa: F401  (compat patches, registries)
from mmkd_det.apis import (PreflightError, add_keep_heap_arg, apply_keep_heap, check_config,
                           load_config, parse_runner_args, runner_parser)


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
    add_keep_heap_arg(parser)
    return parse_runner_args(parser)


def main():
    args = parse_args()
    apply_keep_heap(args.keep_heap, on_missing='warn')
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
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
    except PreflightError as err:
        sys.exit(f'[mmkd_det] {err}')
    runner = Runner.from_cfg(cfg)
    runner.train()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # an orderly shutdown: without it a gloo worker can abort at exit
        # ("terminate called without an active exception") after a finished run
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main()
