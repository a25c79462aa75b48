"""Train a detector or a Distiller: the same flags as mmdet's tools/train.py."""
import argparse
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmkd_det  # noqa: F401  (compat patches, registries)
from mmkd_det.apis import PreflightError, check_config, keep_freed_memory
from mmkd_det.compat import cpu_distributed_cfg


def parse_args():
    parser = argparse.ArgumentParser(description='Train a (distilled) detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by batch')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or the latest one')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--keep-heap',
        action='store_true',
        help='CPU training: keep freed memory in the process (glibc) instead of '
        'faulting fresh pages in every step; faster at large image sizes, '
        'resident memory stays at the peak (mmkd_det.apis.keep_freed_memory)')
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    if args.keep_heap and not keep_freed_memory():
        print('[mmkd_det] --keep-heap: the C library has no mallopt (not glibc); ignored.')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
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
    if args.launcher != 'none':
        cpu_distributed_cfg(cfg)
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
