"""The memory soak (mmkd_det/analysis/soak.py): its slope fit and a short run."""
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmkd_det.analysis.soak import (RSSRecorder, rss_mib, rss_slope, run_soak, soak_config,
                                    soak_table, verdict)
from mmkd_det.registry import HOOKS
from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py')
LEAK_MIB = 8


@HOOKS.register_module(force=True)
class LeakEveryIter(Hook):
    """Keep ``mib`` MiB of written memory per training iteration (a leak)."""

    def __init__(self, mib):
        self.kept = []
        self.numel = mib * 2**20 // 4

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.kept.append(torch.ones(self.numel))


def test_slope_of_hand_made_series():
    # a warm-up spike left out: 500, 502, 504 MiB at iterations 200, 300, 400
    assert rss_slope([0, 100, 200, 300, 400], [400, 700, 500, 502, 504], warmup=200) == \
        pytest.approx(2.0)
    # least squares by hand: mean i = 15, mean r = 2.75, sum di*dr = 55, sum di^2 = 500,
    # 0.11 MiB per iteration
    assert rss_slope([0, 10, 20, 30], [1, 3, 2, 5]) == pytest.approx(11.0)
    assert rss_slope([0, 10, 20], [300, 300, 300]) == 0.0
    assert rss_slope([0, 50, 100], [310, 305, 300]) == pytest.approx(-10.0)


def test_slope_errors_name_the_fix():
    with pytest.raises(ValueError, match='2 iterations but 3 memory samples'):
        rss_slope([0, 1], [1, 2, 3])
    with pytest.raises(ValueError, match=r'1 sample\(s\) at or after warm-up iteration 30.*'
                       'Run more iterations'):
        rss_slope([0, 10, 20, 30], [1, 2, 3, 4], warmup=30)
    with pytest.raises(ValueError, match='positive number of iterations'):
        RSSRecorder(0)
    with pytest.raises(ValueError, match=r'warmup \(95\) must leave at least two samples.*'
                       'warmup <= 90'):
        run_soak(CONFIG, 'unused', iters=100, interval=10, warmup=95)


def test_command_line_stops_on_a_bad_warmup():
    tool = osp.join(ROOT, 'tools/analysis_tools/soak.py')
    proc = subprocess.run(
        [sys.executable, tool, CONFIG, '--iters', '10', '--interval', '5', '--warmup', '8'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert '[mmkd_det] warmup (8) must leave at least two samples' in proc.stderr
    assert 'use warmup <= 5' in proc.stderr


def test_rss_matches_statm():
    """VmRSS of /proc/self/status against the resident pages of /proc/self/statm."""
    with open('/proc/self/statm') as f:
        statm = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    assert rss_mib() == pytest.approx(statm, abs=8)
    assert rss_mib() > 50  # torch is loaded


def test_soak_config_trains_only():
    cfg = soak_config(CONFIG, '/tmp/w', 30, '/data/x', 't.pth', log_interval=5)
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=30, val_interval=31)
    assert cfg.train_dataloader.sampler == dict(type='InfiniteSampler', shuffle=True)
    assert cfg.train_dataloader.num_workers == 0
    assert cfg.train_dataloader.dataset.data_root == '/data/x/'
    assert cfg.val_dataloader is None and cfg.val_evaluator is None and cfg.val_cfg is None
    assert cfg.default_hooks.checkpoint is None
    assert cfg.model.teacher_ckpt == 't.pth'
    hooks = [h['type'] for h in cfg.custom_hooks]
    shipped = [h['type'] for h in Config.fromfile(CONFIG).custom_hooks]
    assert 'TeacherEvalHook' in shipped and hooks == [h for h in shipped if h != 'TeacherEvalHook']
    plain = osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py')
    with pytest.raises(ValueError, match='not a distillation config'):
        soak_config(plain, '/tmp/w', 30, '/data/x', 't.pth')


def test_short_soak_sees_a_leak(tmp_path):
    """30 iterations of the shipped FRS config (batch 2, 4 generated images)
    with a hook that keeps 8 MiB per iteration: the record's structure, its
    figures against an independent fit, and a slope of about 800 MiB / 100
    iterations that fails the threshold."""
    hooks = Config.fromfile(CONFIG).custom_hooks + [dict(type='LeakEveryIter', mib=LEAK_MIB)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = run_soak(
            CONFIG,
            str(tmp_path),
            iters=30,
            interval=5,
            warmup=10,
            threshold=1.0,
            num_images=4,
            cfg_options={
                'train_dataloader.batch_size': 2,
                'custom_hooks': hooks
            })
    finally:
        torch.set_num_threads(threads)
    assert osp.isfile(tmp_path / 'teacher_init.pth')
    assert record['num_images'] == 4 and record['batch_size'] == 2
    samples = record['samples']
    assert [s['iter'] for s in samples] == [0, 5, 10, 15, 20, 25, 30]
    assert samples[0]['loss'] is None
    assert all(math.isfinite(s['loss']) for s in samples[1:])
    fitted = [s for s in samples if s['iter'] >= 10]
    x = np.array([s['iter'] for s in fitted], dtype=float)
    y = np.array([s['rss_mib'] for s in fitted])
    slope = 100 * np.polyfit(x, y, 1)[0]
    assert record['slope_mib_per_100_iters'] == pytest.approx(slope, rel=1e-9)
    assert record['slope_mib_per_100_iters'] == pytest.approx(100 * LEAK_MIB, rel=0.2)
    assert record['growth_mib'] == pytest.approx(y[-1] - y[0])
    assert record['warm_mib'] == y[0] and record['end_mib'] == samples[-1]['rss_mib']
    assert record['peak_mib'] == max(s['rss_mib'] for s in samples)
    assert record['passed'] is False
    assert verdict(record).startswith('FAIL: resident memory slope +')
    table = soak_table(record)
    assert f'{record["slope_mib_per_100_iters"]:+.3f} MiB per 100 iterations' in table
    assert '| verdict | FAIL |' in table and '30 (2, 4, 1)' in table
    assert '| command |' not in table
    cmd = 'python tools/analysis_tools/soak.py C --iters 30'
    assert soak_table(dict(record, command=cmd)).splitlines()[2] == f'| command | `{cmd}` |'
