"""Checkpoints meeting configs: weights-only loading of real Runner / model-zoo checkpoints,
checkpoint-kind checks (mmkd_det.apis.checkpoint), and one CLI run of tools/test.py."""
import copy
import logging
import os
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmkd_det.apis import add_checkpoint_checks, fit_checkpoint
from mmkd_det.apis.checkpoint import MAX_MISMATCHED_KEYS
from mmkd_det.compat import UNSAFE_LOAD_ENV, CheckpointError, load_checkpoint_file
from mmkd_det.datasets.synthetic import generate_synthetic_dataset
from mmkd_det.registry import MODELS
from tests.conftest import ROOT, frs_distiller_cfg, save_weights, tiny_model_cfg
from tests.test_tools.test_train import runner_cfg, scoring_everything

NUM_CLASSES = 6  # the synthetic dataset's


class NumpyInfo(Hook):
    """Puts numpy scalars, arrays and dtypes in the message hub, as user hooks do; the
    checkpoint's ``message_hub`` then pickles them."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        hub = runner.message_hub
        hub.update_info('np_float', np.float64(0.25))
        hub.update_info('np_int', np.int64(7))
        hub.update_info('np_array', np.arange(3, dtype=np.float32))
        hub.update_info('np_dtype', np.dtype('int32'))


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A 2-iteration distillation run of tiny detectors on synthetic data, with momentum SGD,
    two parameter schedulers and numpy values in the message hub: its checkpoint, its teacher
    file and the plain student config, all real."""
    with DefaultScope.overwrite_default_scope('mmkd_det'):  # module fixtures run before conftest's
        return _train_run(tmp_path_factory.mktemp('ckpt_run'))


def _train_run(tmp):
    data_root = str(tmp / 'data')
    generate_synthetic_dataset(data_root, num_train=4, num_val=2, img_size=64, seed=0,
                               formats=('coco', ))
    teacher = save_weights(tiny_model_cfg('retina', 16, NUM_CLASSES), str(tmp / 'teacher.pth'))
    cfg = runner_cfg(frs_distiller_cfg('retina', teacher, num_classes=NUM_CLASSES), data_root,
                     str(tmp / 'work'))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1),
        dict(type='MultiStepLR', by_epoch=False, milestones=[1], gamma=0.1)
    ]
    cfg.custom_hooks = []  # no teacher evaluation: not what is tested here
    runner = Runner.from_cfg(cfg)
    runner.register_hook(NumpyInfo())
    runner.train()
    student = scoring_everything(tiny_model_cfg('retina', 8, NUM_CLASSES))  # an mAP to print
    plain = runner_cfg(student, data_root, str(tmp / 'test'))
    plain.test_cfg = dict(type='TestLoop')
    return dict(ckpt=str(tmp / 'work' / 'iter_2.pth'), teacher=teacher, plain=plain, cfg=cfg,
                tmp=tmp)


# ------------------------------------------------------------------------- weights-only loading
def test_runner_checkpoint_loads_weights_only(run, monkeypatch):
    """Everything a Runner checkpoint holds is allow-listed: no opt-in, no warning."""
    from mmkd_det import compat
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    logs = []
    monkeypatch.setattr(compat, 'print_log', lambda *a, **k: logs.append(a[0]))
    ckpt = load_checkpoint_file(run['ckpt'], key='resume')
    assert logs == []
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['seed'] == 0
    assert ckpt['optimizer']['state'] and 'momentum_buffer' in ckpt['optimizer']['state'][0]
    linear, multistep = ckpt['param_schedulers']
    assert linear['start_factor'] == 0.1 and multistep['gamma'] == 0.1
    assert dict(multistep['milestones']) == {1: 1}  # a collections.Counter
    hub = ckpt['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)
    info = hub['runtime_info']
    assert info['np_float'] == 0.25 and type(info['np_float']) is np.float64
    assert info['np_int'] == 7 and type(info['np_int']) is np.int64
    assert np.array_equal(info['np_array'], [0, 1, 2]) and info['np_array'].dtype == np.float32
    assert info['np_dtype'] == np.dtype('int32')
    assert any(k.startswith('student.') for k in ckpt['state_dict'])


def test_model_zoo_style_checkpoint_loads_weights_only(tmp_path, monkeypatch):
    """What OpenMMLab model-zoo checkpoints hold (mmdet 2.x ``meta``: CLASSES, config text,
    versions, hook_msgs; an OrderedDict state dict; sometimes an optimizer)."""
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    model = MODELS.build(tiny_model_cfg('retina', 8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    cls_scores, bbox_preds = model(torch.rand(2, 3, 64, 64))  # tensor mode: head outputs
    sum(t.sum() for t in cls_scores + bbox_preds).backward()
    opt.step()  # momentum buffers in the optimizer state
    path = tmp_path / 'retinanet_zoo.pth'
    meta = dict(mmdet_version='2.25.0', mmcv_version='1.6.0', config='model = dict()\n',
                CLASSES=('a', 'b', 'c'), epoch=12, iter=87960, time='Mon Jan  1 00:00:00 2022',
                hook_msgs=dict(last_ckpt='work_dirs/epoch_12.pth'),
                dataset_meta=dict(classes=('a', 'b', 'c'), palette=[(220, 20, 60)] * 3))
    torch.save(dict(meta=meta, state_dict=OrderedDict(model.state_dict()),
                    optimizer=opt.state_dict()), path)
    ckpt = load_checkpoint_file(path, key='teacher_ckpt')
    assert ckpt['meta'] == meta and list(ckpt['state_dict']) == list(model.state_dict())
    assert len(ckpt['optimizer']['state']) == len(list(model.parameters()))


# --------------------------------------------------------------------------- checkpoint kinds
def test_distiller_checkpoint_with_plain_config_evaluates_its_student(run, monkeypatch):
    logs = []
    monkeypatch.setattr('mmkd_det.apis.checkpoint.print_log',
                        lambda msg, **k: logs.append((msg, k)))
    ckpt = load_checkpoint_file(run['ckpt'])
    saved = dict(ckpt['state_dict'])
    student = MODELS.build(tiny_model_cfg('retina', 8, NUM_CLASSES))
    fit_checkpoint(student, ckpt, run['ckpt'], key='checkpoint')
    assert set(ckpt['state_dict']) == set(student.state_dict())  # every key fits, none left
    for k, v in ckpt['state_dict'].items():
        assert v is saved['student.' + k]
    (msg, kwargs), = logs
    assert msg.startswith(f"checkpoint {run['ckpt']!r} is a Distiller checkpoint and the config "
                          'a plain detector: using its student')
    assert 'tools/model_converters/export_student.py' in msg
    assert kwargs['level'] == logging.WARNING


def test_plain_checkpoint_with_distiller_config_stops(run, weights):
    distiller = MODELS.build(frs_distiller_cfg('retina', run['teacher'], num_classes=NUM_CLASSES))
    plain = torch.load(run['teacher'])
    with pytest.raises(CheckpointError, match=r"^resume 'x.pth' is a plain detector checkpoint "
                       r'\(no `student.\*` keys\) but the config builds a Distiller.*teacher_ckpt'):
        fit_checkpoint(distiller, plain, 'x.pth', key='resume')
    ckpt = load_checkpoint_file(run['ckpt'])  # its own kind: fits without a word
    assert fit_checkpoint(distiller, ckpt, run['ckpt'])['state_dict'] is ckpt['state_dict']


def test_wrong_architecture_or_width_is_an_error(run):
    student = MODELS.build(tiny_model_cfg('retina', 8, NUM_CLASSES))
    gfl = MODELS.build(tiny_model_cfg('gfl', 8, NUM_CLASSES)).state_dict()
    with pytest.raises(CheckpointError, match=r"^load_from 'gfl.pth' does not fit the model of "
                       r'the config: \d+ \(.*\) missing and \d+ \(.*\) unexpected keys'):
        fit_checkpoint(student, dict(state_dict=gfl), 'gfl.pth')
    wide = torch.load(run['teacher'])  # the teacher: same keys, 16 channels instead of 8
    with pytest.raises(CheckpointError, match='tensors have other shapes'):
        fit_checkpoint(student, wide, 'wide.pth')
    fit_checkpoint(student, wide, 'wide.pth', allow_shape_mismatch=True)  # fine-tuning: allowed


def test_a_handful_of_missing_keys_is_logged_more_is_an_error(monkeypatch):
    logs = []
    monkeypatch.setattr('mmkd_det.apis.checkpoint.print_log', lambda msg, **k: logs.append(msg))
    student = MODELS.build(tiny_model_cfg('retina', 8, NUM_CLASSES))
    state = student.state_dict()
    limit = MAX_MISMATCHED_KEYS
    dropped = list(state)[:limit]
    few = {k: v for k, v in state.items() if k not in dropped}
    fit_checkpoint(student, dict(state_dict=few), 'few.pth')
    assert len(logs) == 1 and f'{limit} missing keys {dropped}' in logs[0]
    one_more = dict(few, extra=torch.zeros(1))
    with pytest.raises(CheckpointError, match=rf'{limit} \(.*\) missing and 1 \(extra\) unexp'):
        fit_checkpoint(student, dict(state_dict=one_more), 'more.pth')


# -------------------------------------------------------------------- through the Runner (hook)
def _runner(cfg, work_dir, **kwargs):
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(kwargs)
    runner = Runner.from_cfg(cfg)
    add_checkpoint_checks(runner)
    return runner


def test_runner_load_from_distiller_checkpoint_into_plain_detector(run, tmp_path):
    runner = _runner(run['plain'], tmp_path, load_from=run['ckpt'])
    runner.load_or_resume()
    saved = load_checkpoint_file(run['ckpt'])['state_dict']
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, saved['student.' + k]), k


def test_runner_resume_and_load_from_errors_name_the_key(run, tmp_path):
    runner = _runner(run['cfg'], tmp_path / 'a', load_from=run['teacher'], resume=True)
    with pytest.raises(CheckpointError, match=rf"^resume {run['teacher']!r} is a plain detector"):
        runner.train()
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    runner = _runner(run['plain'], tmp_path / 'b', load_from=str(empty))
    with pytest.raises(CheckpointError, match=rf'^load_from {str(empty)!r} is an empty file'):
        runner.test()
    with pytest.raises(CheckpointError, match=rf'^checkpoint {str(empty)!r}'):  # key not kept
        load_checkpoint_file(empty)


# ------------------------------------------------------------------------------- tools/test.py
def test_test_cli_evaluates_a_distiller_checkpoint_with_the_student_config(run):
    cfg_path = str(run['tmp'] / 'student_cfg.py')
    run['plain'].dump(cfg_path)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/test.py'), cfg_path, run['ckpt'], '--work-dir',
         str(run['tmp'] / 'cli')], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'is a Distiller checkpoint and the config a plain detector: using its student' in log
    assert 'coco/bbox_mAP:' in log and 'unexpected key' not in log
