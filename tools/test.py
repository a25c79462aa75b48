"""Evaluate a checkpoint (Distiller or plain detector) on the config's test set."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmkd_det  # noqa: F401
from mmkd_det.compat import cpu_distributed_cfg


def parse_args():
    parser = argparse.ArgumentParser(description='Test a (distilled) detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs',
        osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.launcher != 'none':
        cpu_distributed_cfg(cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
