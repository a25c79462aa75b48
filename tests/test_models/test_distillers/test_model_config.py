"""Teacher/student config paths: ``mmkd_det::``, absolute and relative (one rule)."""
import os
import os.path as osp

import pytest
import torch

from mmkd_det.models.distillers import (load_model_cfg, model_config, resolve_config_path,
                                        shipped_configs_dir)
from mmkd_det.models.distillers.model_config import project_root, resolve_checkpoint_path
from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, save_weights

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TEACHER = 'retinanet/retinanet_r18w48_synthetic.py'


def test_shipped_configs_dir_is_the_packages_mim_configs():
    import mmkd_det
    assert shipped_configs_dir() == osp.join(osp.dirname(mmkd_det.__file__), '.mim', 'configs')
    # in the source checkout it is the checkout's configs/ (the link mmkd_det/.mim/configs)
    assert osp.samefile(shipped_configs_dir(), osp.join(ROOT, 'configs'))


def test_mmkd_det_prefix_names_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere: the prefix does not depend on the cwd
    path = resolve_config_path(f'mmkd_det::{TEACHER}')
    assert path == osp.join(shipped_configs_dir(), TEACHER)
    assert osp.samefile(path, osp.join(ROOT, 'configs', TEACHER))


def test_relative_path_current_directory_first_then_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(TEACHER) == osp.join(shipped_configs_dir(), TEACHER)
    own = tmp_path / TEACHER
    own.parent.mkdir()
    own.write_text("model = dict(type='RetinaNet')\n")
    assert resolve_config_path(TEACHER) == str(own)
    assert resolve_config_path(str(own)) == str(own)  # absolute: as is


def test_not_found_lists_every_location_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        resolve_config_path('retinanet/nope.py')
    msg = str(err.value)
    assert str(tmp_path / 'retinanet/nope.py') in msg
    assert osp.join(shipped_configs_dir(), 'retinanet/nope.py') in msg
    assert 'mmkd_det::<folder>/<file>.py' in msg
    with pytest.raises(FileNotFoundError, match=r'Tried:\n  - .*\.mim/configs/nope/x\.py\n'):
        resolve_config_path('mmkd_det::nope/x.py')
    with pytest.raises(FileNotFoundError, match=r'Tried:\n  - /abs/nope\.py\n'):
        resolve_config_path('/abs/nope.py')


def test_load_model_cfg_merges_overrides_into_the_files_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_model_cfg(
        dict(cfg_path=f'mmkd_det::{TEACHER}', bbox_head=dict(num_classes=7)), 'teacher')
    assert cfg.type == 'RetinaNet' and cfg.bbox_head.num_classes == 7
    assert cfg.backbone.base_channels == 48  # the rest comes from the file
    assert load_model_cfg(f'mmkd_det::{TEACHER}', 'teacher').bbox_head.num_classes != 7
    (tmp_path / 'empty.py').write_text('x = 1\n')
    with pytest.raises(KeyError, match='defines no `model`'):
        load_model_cfg('empty.py', 'teacher')
    with pytest.raises(KeyError, match='needs `type`.*or `cfg_path`'):
        load_model_cfg(dict(depth=18), 'student')


def test_distiller_builds_from_shipped_paths_outside_the_checkout(tmp_path, monkeypatch):
    """Teacher and student named as mmkd_det:: build from any directory."""
    monkeypatch.chdir(tmp_path)
    teacher = load_model_cfg(f'mmkd_det::{TEACHER}', 'teacher')
    ckpt = save_weights(teacher, str(tmp_path / 't.pth'))
    cfg = frs_distiller_cfg('retina', ckpt, probe_size=64)
    cfg['teacher'] = dict(cfg_path=f'mmkd_det::{TEACHER}')
    cfg['student'] = 'mmkd_det::retinanet/retinanet_r18w32_synthetic.py'
    d = MODELS.build(cfg)
    saved = torch.load(ckpt)['state_dict']
    assert d.teacher.backbone.conv1.weight.shape == saved['backbone.conv1.weight'].shape
    assert d.student.backbone.conv1.weight.shape[0] == 32
    assert os.getcwd() == str(tmp_path)


# ------------------------------------------------------------- checkpoints: the same rule
def test_project_root_is_the_checkout():
    assert project_root() == osp.realpath(ROOT)


def test_relative_checkpoint_current_directory_first_then_project_root(tmp_path, monkeypatch):
    root, cwd = tmp_path / 'root', tmp_path / 'cwd'
    (root / 'work_dirs' / 'run').mkdir(parents=True)
    (cwd / 'work_dirs' / 'run').mkdir(parents=True)
    monkeypatch.setattr(model_config, 'project_root', lambda: str(root))
    monkeypatch.chdir(cwd)
    rel = 'work_dirs/run/epoch_1.pth'
    (root / rel).write_bytes(b'x')
    assert resolve_checkpoint_path(rel) == str(root / rel)
    (cwd / rel).write_bytes(b'x')
    assert resolve_checkpoint_path(rel) == str(cwd / rel)
    assert resolve_checkpoint_path(str(root / rel)) == str(root / rel)  # absolute: as is
    url = 'https://download.openmmlab.com/x.pth'
    assert resolve_checkpoint_path(url) == url  # URLs: as they are, not looked up


def test_checkpoint_not_found_lists_every_location_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(model_config, 'project_root', lambda: str(tmp_path / 'root'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint_path('work_dirs/t/epoch_1.pth', 'teacher_ckpt', hint='Train it.')
    assert str(err.value) == (
        "teacher_ckpt 'work_dirs/t/epoch_1.pth' not found. Tried:\n"
        f'  - {tmp_path}/work_dirs/t/epoch_1.pth\n'
        f'  - {tmp_path}/root/work_dirs/t/epoch_1.pth\n'
        f'Relative paths are looked up in the current directory ({tmp_path}), then under the '
        f'mmkd_det project root ({tmp_path}/root). Train it.')
