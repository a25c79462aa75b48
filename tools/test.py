"""Evaluate a checkpoint (Distiller or plain detector) on the config's test set."""
from mmengine.runner import Runner

import mmkd_det  # noqa: F401  (compat patches, registries)
from mmkd_det.apis import load_config, parse_runner_args, runner_parser


def parse_args():
    parser = runner_parser('Test a (distilled) detector', 'test config file path',
                           'the dir to save logs and metrics')
    parser.add_argument('checkpoint', help='checkpoint file')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    runner.test()


if __name__ == '__main__':
    main()
