"""mmkd_det.analysis.demo: the demo's table, its summary over seeds and reuse
of finished runs."""
import json
import os.path as osp
import subprocess

import pytest

from mmkd_det.analysis import demo
from mmkd_det.analysis.logs import METRICS


def metrics(m):
    """Every COCO box metric = ``m`` / 100 (the mAP ``m`` %)."""
    return {'coco/' + k: m / 100 for k in METRICS}


def test_demo_table_gains_against_the_student():
    rows = [('teacher', 't.py', metrics(9.0), 10.0), ('student', 's.py', metrics(4.0), 5.0),
            ('student + FRS', 'f.py', metrics(5.5), 6.4)]
    lines = demo.demo_table(rows).splitlines()
    assert lines[2] == '| teacher | `t.py` | ' + ' | '.join(['9.0'] * 6) + ' |  | 10 |'
    assert lines[4].endswith('| 5.5 | +1.5 | 6 |')


def test_seeds_table_mean_std_and_gains(tmp_path):
    dirs = []
    for seed, (s, f) in enumerate([(4.0, 5.0), (5.0, 5.5)]):
        wd = tmp_path / f'seed{seed}'
        wd.mkdir()
        (wd / 'results.json').write_text(json.dumps([
            dict(name='teacher', metrics=metrics(9.0)), dict(name='student', metrics=metrics(s)),
            dict(name='student + FRS', metrics=metrics(f))]))
        dirs.append(str(wd))
    lines = demo.seeds_table(dirs).splitlines()
    # student: mean 4.5, sample std of (4, 5) = 0.707; FRS: 5.25 -> '5.2', std 0.354
    assert lines[2] == '| student | ' + ' | '.join(['4.5 ± 0.7'] * 6) + ' | 4.0, 5.0 |'
    assert lines[3].startswith('| student + FRS | 5.2 ± 0.4 |')
    assert lines[-1] == 'student + FRS gain in mAP per run: +1.0, +0.5 (mean +0.8).'


def test_finished_demo_runs_are_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, 'RUNS', demo.RUNS[1:2])          # the student alone
    monkeypatch.setattr('mmkd_det.datasets.synthetic.generate_synthetic_dataset',
                        lambda *a, **k: None)
    wd = tmp_path / 'student'
    (wd / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (wd / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(metrics(4.2)) + '\n')
    (wd / 'epoch_10.pth').write_text('x')
    (wd / 'last_checkpoint').write_text(str(wd / 'epoch_10.pth'))

    def no_training(*a, **k):
        raise AssertionError('a finished run was trained again')
    monkeypatch.setattr(subprocess, 'run', no_training)
    (name, cfg, m, secs), = demo.run_demo(str(tmp_path), 'train.py')
    assert (name, m['coco/bbox_mAP']) == ('student', pytest.approx(0.042))
    assert secs != secs                 # trained elsewhere: its time is unknown (nan)
    demo.write_demo([(name, cfg, m, 12.0)], str(tmp_path))
    assert json.load(open(osp.join(tmp_path, 'results.json')))[0]['train_seconds'] == 12.0
