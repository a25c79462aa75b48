"""mmkd_det.apis.cli: the options and steps the scripts in tools/ share, each
checked against a value written out by hand."""
import argparse
import json
import os

import pytest
import torch

from mmkd_det.apis import cli


def test_cfg_options_parse_into_a_dict_for_merge_from_dict():
    parser = argparse.ArgumentParser()
    cli.add_cfg_options_arg(parser)
    args = parser.parse_args(['--cfg-options', 'a=1', 'b.c=x', 'd=[1,2]'])
    assert args.cfg_options == {'a': 1, 'b.c': 'x', 'd': [1, 2]}
    assert parser.parse_args([]).cfg_options is None
    parser = argparse.ArgumentParser()
    cli.add_cfg_options_arg(parser, 'overrides', default={})
    assert parser.parse_args([]).cfg_options == {}


def test_distiller_options_default_to_an_empty_dict():
    parser = argparse.ArgumentParser()
    cli.add_distiller_options_arg(parser, 'fuse_teacher_bn=False')
    assert parser.parse_args([]).distiller_options == {}
    args = parser.parse_args(['--distiller-options', 'fuse_teacher_bn=False', 'x=0.5'])
    assert args.distiller_options == {'fuse_teacher_bn': False, 'x': 0.5}
    assert 'e.g. fuse_teacher_bn=False' in parser.format_help()


def test_distiller_config_args_and_image_size():
    parser = argparse.ArgumentParser()
    cli.add_distiller_config_args(parser)
    cli.add_image_size_arg(parser)
    args = parser.parse_args(['kd.py'])
    assert (args.config, args.teacher_ckpt, args.cfg_options, args.size) == \
        ('kd.py', None, {}, [800, 1333])
    args = parser.parse_args(
        ['kd.py', '--teacher-ckpt', 't.pth', '--cfg-options', 'a.b=2', '--size', '128', '96'])
    assert (args.teacher_ckpt, args.cfg_options, args.size) == ('t.pth', {'a.b': 2}, [128, 96])


def test_doc_parser_describes_a_script_by_its_docstring():
    doc = 'Time a step.\n\n    python tools/x.py --iters 3\n'
    parser = cli.doc_parser(doc)
    assert parser.description == 'Time a step.' and parser.epilog == doc
    # the example keeps its indentation and line break in --help
    assert '\n    python tools/x.py --iters 3\n' in parser.format_help()


def test_launcher_args_and_local_rank(monkeypatch):
    parser = cli.runner_parser('Test', 'config file', 'work dir')
    parser.add_argument('checkpoint')
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = cli.parse_runner_args(parser, ['c.py', 'e.pth', '--launcher', 'pytorch', '--local-rank',
                                          '3'])
    assert (args.config, args.checkpoint, args.work_dir, args.cfg_options) == \
        ('c.py', 'e.pth', None, None)
    assert (args.launcher, args.local_rank) == ('pytorch', 3)
    assert os.environ['LOCAL_RANK'] == '3'
    # torchrun sets LOCAL_RANK itself: the option's default does not overwrite it
    monkeypatch.setenv('LOCAL_RANK', '5')
    args = cli.parse_runner_args(parser, ['c.py', 'e.pth'])
    assert (args.launcher, args.local_rank, os.environ['LOCAL_RANK']) == ('none', 0, '5')
    with pytest.raises(SystemExit):
        parser.parse_args(['c.py', 'e.pth', '--launcher', 'torchrun'])


@pytest.mark.parametrize('has_mallopt', [True, False])
def test_apply_keep_heap(monkeypatch, capsys, has_mallopt):
    calls = []
    monkeypatch.setattr(cli, 'keep_freed_memory', lambda: calls.append(1) or has_mallopt)
    assert cli.apply_keep_heap(False) is False and not calls      # not asked: nothing done
    if has_mallopt:
        assert cli.apply_keep_heap(True) is True and cli.apply_keep_heap(True, 'warn') is True
        return
    with pytest.raises(SystemExit) as err:
        cli.apply_keep_heap(True)
    assert err.value.code == '--keep-heap: the C library has no mallopt (not glibc).'
    assert cli.apply_keep_heap(True, on_missing='warn') is False
    assert capsys.readouterr().out == \
        '[mmkd_det] --keep-heap: the C library has no mallopt (not glibc); ignored.\n'
    with pytest.raises(ValueError, match="'exit' or 'warn'"):
        cli.apply_keep_heap(True, on_missing='ignore')


def test_write_json_makes_the_folder_and_skips_without_a_path(tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_json_arg(parser)
    assert parser.parse_args([]).json is None
    cli.write_json({'a': [1, 2]}, None)
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / 'sub' / 'res.json'
    cli.write_json({'a': [1, 2], 'b': 0.5}, str(path))
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 0.5\n}'
    assert json.loads(path.read_text()) == {'a': [1, 2], 'b': 0.5}


def test_default_work_dir_follows_mmdet():
    from mmengine.config import Config
    path = 'configs/frs/frs_retina_r101_r50.py'
    assert cli.default_work_dir(Config(), path) == './work_dirs/frs_retina_r101_r50'
    assert cli.default_work_dir(Config(dict(work_dir=None)), path) == \
        './work_dirs/frs_retina_r101_r50'
    assert cli.default_work_dir(Config(dict(work_dir='runs/a')), path) == 'runs/a'
    assert cli.default_work_dir(Config(dict(work_dir='runs/a')), path, 'mine') == 'mine'


def test_load_config_merges_options_and_adapts_cpu_processes(tmp_path):
    path = tmp_path / 'tiny_cfg.py'
    path.write_text("a = 1\nb = dict(c='y', d=2)\nenv_cfg = dict(dist_cfg=dict(backend='nccl'))\n")
    cfg = cli.load_config(str(path), {'b.c': 'x'})
    assert (cfg.a, cfg.b.c, cfg.b.d, cfg.launcher) == (1, 'x', 2, 'none')
    assert cfg.work_dir == './work_dirs/tiny_cfg'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg
    cfg = cli.load_config(str(path), None, 'pytorch', 'out')
    assert (cfg.launcher, cfg.work_dir) == ('pytorch', 'out')
    if torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    else:   # CPU processes: gloo, and DDP without device_ids
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg == dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=False,
            device_ids=None)


def test_overlays_merge_in_order_before_cfg_options(tmp_path):
    path = tmp_path / 'base.py'
    path.write_text("a = 1\nb = dict(c=1, d=[1, 2])\nkeep = 'yes'\n")
    first = tmp_path / 'first.py'
    first.write_text('a = 2\nb = dict(c=2, d=[3])\n')
    second = tmp_path / 'second.py'
    second.write_text('a = 3\n')
    cfg = cli.load_config(str(path), {'a': 4}, overlays=[str(first), str(second)])
    # dicts merge key by key, lists replace, later files win, --cfg-options last
    assert (cfg.a, cfg.b.c, cfg.b.d, cfg.keep) == (4, 2, [3], 'yes')
    assert cfg.work_dir == os.path.join('./work_dirs', 'base+first+second')
    parser = cli.runner_parser('x', 'config', 'work dir')
    args = parser.parse_args(['c.py', '--overlay', 'o1.py', 'o2.py'])
    assert args.overlay == ['o1.py', 'o2.py'] and parser.parse_args(['c.py']).overlay == []
    with pytest.raises(FileNotFoundError, match=r'--overlay nope.py: file not found'):
        cli.load_config(str(path), overlays=['nope.py'])


def test_standard_tier_overlay_changes_data_and_schedule_only(monkeypatch):
    from mmkd_det.datasets.synthetic import presets_in_config
    from tests.conftest import ROOT
    monkeypatch.chdir(ROOT)
    config = 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py'
    quick = cli.load_config(config)
    std = cli.load_config(config, overlays=['configs/_base_/tiers/synthetic_standard.py'])
    assert presets_in_config(quick) == ['quick'] and presets_in_config(std) == ['standard']
    assert std.train_dataloader.dataset.pipeline[2].scale == (192, 192)
    assert std.val_dataloader.dataset.pipeline[1].scale == (192, 192)
    assert std.val_evaluator.ann_file == 'data/synthetic_standard/annotations/instances_val.json'
    assert (std.train_cfg.max_epochs, std.param_scheduler[1].end) == (8, 8)
    assert std.model == quick.model and std.optim_wrapper == quick.optim_wrapper
    assert std.train_dataloader.batch_size == quick.train_dataloader.batch_size == 8
    teacher = cli.load_config('configs/retinanet/retinanet_r18w48_synthetic.py',
                              overlays=['configs/_base_/tiers/synthetic_standard_teacher.py'])
    assert (teacher.train_cfg.max_epochs, teacher.param_scheduler[1].end) == (24, 24)
    assert presets_in_config(teacher) == ['standard']


def test_finish_distributed_destroys_the_group_and_is_a_no_op_without_one(tmp_path):
    import torch.distributed as dist
    assert not dist.is_initialized()
    cli.finish_distributed()                    # no group: nothing to do, no error
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        cli.finish_distributed()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
