"""Evaluate a checkpoint (Distiller or plain detector) on the config's test set.

A Distiller checkpoint (``work_dirs/<distill run>/epoch_N.pth``) is evaluated
with its distillation config or with the student's plain detector config (the
log says its student is used); a plain detector checkpoint needs a plain
detector config. A checkpoint that does not fit the config (more than a few
missing or unexpected keys, tensors of other shapes) stops with an error
instead of scoring random weights (mmkd_det.apis.fit_checkpoint).

Example:
    python tools/test.py configs/frs/<distill config>.py work_dirs/<run>/epoch_12.pth
"""
from mmengine.runner import Runner

import mmkd_det  # noqa: F401  (compat patches, registries)
from mmkd_det.apis import (add_checkpoint_checks, finish_distributed, load_config,
                           parse_runner_args, runner_parser)


def parse_args():
    parser = runner_parser('Test a (distilled) detector', 'test config file path',
                           'the dir to save logs and metrics')
    parser.add_argument('checkpoint', help='checkpoint file')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir, args.overlay)
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    add_checkpoint_checks(runner, key='checkpoint')
    runner.test()
    finish_distributed()


if __name__ == '__main__':
    main()
