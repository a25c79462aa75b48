"""mmkd_det.analysis.benchmark: the results table (mean ± std over seeds, gains
paired by seed), resuming (a finished run is not trained again) and the
built-in runs."""
import json
import os
import os.path as osp
import subprocess

import pytest

from mmkd_det.analysis import benchmark
from mmkd_det.analysis.logs import METRICS, eval_history
from tests.conftest import ROOT

TRAIN = osp.join(ROOT, 'tools', 'train.py')


def fake(name, seed, m):
    return dict(name=name, seed=seed, metrics={'coco/' + k: m / 100 for k in METRICS})


def test_table_mean_std_and_paired_gain():
    results = [fake('student', 0, 4.0), fake('student', 1, 5.0),
               fake('TID', 0, 5.0), fake('TID', 1, 5.5)]
    rows = {line.split(' | ')[0][2:]: line for line in benchmark.table(results).splitlines()[2:]}
    # student mean 4.5, sample std of (4, 5) = 0.707
    assert rows['student'].split(' | ')[1] == '4.5 ± 0.7'
    # TID: mean 5.25 -> '5.2' (round half to even), std of (5, 5.5) = 0.354;
    # gains +1.0 and +0.5 -> mean +0.75
    assert rows['TID'].split(' | ')[1] == '5.2 ± 0.4'
    assert '+0.8 (+1.0, +0.5)' in rows['TID']
    assert rows['TID'].endswith('| 5.0, 5.5 |')


def test_single_seed_has_no_std_and_gain_from_baseline_runs():
    md = benchmark.table([fake('TID', 0, 5.3)], baseline=[fake('student', 0, 4.1)])
    row = md.splitlines()[2]
    assert row.split(' | ')[1] == '5.3' and '+1.2 (+1.2)' in row


def test_finished_run_is_skipped(tmp_path, monkeypatch):
    wd = benchmark.run_dir(str(tmp_path), 'TID', 0)
    os.makedirs(wd)
    info = dict(fake('TID', 0, 5.0), train_seconds=1.0)
    with open(osp.join(wd, 'run_info.json'), 'w') as f:
        json.dump(info, f)
    with open(osp.join(wd, 'epoch_5.pth'), 'w') as f:
        f.write('x')
    with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(wd, 'epoch_5.pth'))
    os.makedirs(osp.join(wd, '20260101_000000', 'vis_data'))
    with open(osp.join(wd, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.write(json.dumps({'coco/bbox_mAP': 0.05}) + '\n')

    def no_training(*a, **k):
        raise AssertionError('a finished run was trained again')
    monkeypatch.setattr(subprocess, 'run', no_training)
    assert benchmark.train_one('TID', benchmark.RUNS['TID'], 0, str(tmp_path), 'unused.pth', 1,
                               TRAIN) == info


def test_gain_against_the_student_of_the_same_detector():
    results = [fake('student', 0, 4.0), fake('GFL student', 0, 6.0), fake('GFL TID', 0, 6.5),
               fake('TID cls only', 0, 5.0)]
    rows = {line.split(' | ')[0][2:]: line for line in benchmark.table(results).splitlines()[2:]}
    assert '+0.5 (+0.5)' in rows['GFL TID']
    assert '+1.0 (+1.0)' in rows['TID cls only']
    assert rows['GFL student'].split(' | ')[7] == ''


def test_report_adds_a_mask_table_for_instance_segmentation_runs():
    def with_segm(name, seed, box, mask):
        r = fake(name, seed, box)
        r['metrics'].update({'coco/' + k.replace('bbox', 'segm'): mask / 100
                             for k in METRICS})
        return r
    results = [fake('student', 0, 4.0), with_segm('MaskRCNN student', 0, 6.0, 5.0),
               with_segm('MaskRCNN SKD', 0, 6.5, 4.0)]
    md = benchmark.report(results, [])
    box, _, mask = md.partition('Instance segmentation (mask AP):')
    box_rows = {line.split(' | ')[0][2:]: line for line in box.strip().splitlines()[2:]}
    mask_rows = {line.split(' | ')[0][2:]: line for line in mask.strip().splitlines()[2:]}
    assert '+0.5 (+0.5)' in box_rows['MaskRCNN SKD']        # vs 'MaskRCNN student' box 6.0
    assert '-1.0 (-1.0)' in mask_rows['MaskRCNN SKD']       # mask 4.0 vs 5.0
    assert 'student' not in mask_rows                       # no segm metrics: left out
    assert 'Instance segmentation' not in benchmark.report(results[:1], [])


def fake_voc(name, seed, ap50, ap75=None):
    metrics = {'pascal_voc/AP50': ap50 / 100}
    if ap75 is not None:
        metrics.update({'pascal_voc/AP75': ap75 / 100, 'pascal_voc/mAP': (ap50 + ap75) / 200})
    return dict(name=name, seed=seed, metrics=metrics)


def test_voc_runs_get_their_own_table_with_ap50_as_mean_ap():
    results = [fake('student', 0, 4.0), fake('FRS', 0, 5.0),
               fake_voc('SynVOC student', 0, 40.0, 20.0), fake_voc('SynVOC student', 1, 42.0),
               fake_voc('SynVOC FRS', 0, 45.0, 26.0), fake_voc('SynVOC FRS', 1, 44.0, 24.0)]
    coco, _, voc = benchmark.report(results, []).partition('Pascal VOC metric')
    coco_rows = {line.split(' | ')[0][2:] for line in coco.strip().splitlines()[2:]}
    assert coco_rows == {'student', 'FRS'}
    lines = [line for line in voc.splitlines() if line.startswith('|')]
    assert lines[0].startswith('| run | VOC mAP (AP50) | AP75 | gain vs student |')
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in lines[2:]}
    assert rows['SynVOC student'][1:3] == ['41.0 ± 1.4', '20.0']   # AP75 of seed 0 only
    # FRS: AP50 44.5 ± 0.7, AP75 25.0 ± 1.4; gains paired with 'SynVOC student': +5, +2
    assert rows['SynVOC FRS'][1:4] == ['44.5 ± 0.7', '25.0 ± 1.4', '+3.5 (+5.0, +2.0)']
    no_ap75 = benchmark.table([fake_voc('SynVOC student', 0, 40.0)], kind='voc')
    assert no_ap75.splitlines()[2].split(' | ')[1:3] == ['40.0', '–']


def test_voc_only_matrix_plots_voc_as_the_main_figure(tmp_path):
    results = [fake_voc('SynVOC student', 0, 40.0, 20.0), fake_voc('SynVOC TID', 0, 43.0, 22.0)]
    stem = str(tmp_path / 'voc')
    benchmark.write(benchmark.report(results, []), results, stem)
    assert open(stem + '.md').read().startswith('Pascal VOC metric')
    assert osp.isfile(stem + '.png') and not osp.exists(stem + '_voc.png')


def test_write_makes_table_json_and_bar_plot(tmp_path):
    results = [fake('student', 0, 4.0), fake('student', 1, 5.0), fake('TID', 0, 5.5)]
    stem = str(tmp_path / 'out' / 'results')
    benchmark.write(benchmark.report(results, []), results, stem)
    assert json.load(open(stem + '.json')) == results
    assert open(stem + '.md').read().startswith('| run |')
    with open(stem + '.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert not osp.exists(stem + '_segm.png') and not osp.exists(stem + '_voc.png')


def test_history_plot_only_when_runs_were_evaluated_per_epoch(tmp_path):
    one = dict(fake('student', 0, 4.0), history=[[5, 0.04]])
    stem = str(tmp_path / 'r')
    benchmark.write(benchmark.report([one], []), [one], stem)
    assert not osp.exists(stem + '_epochs.png')
    curve = [dict(fake('student', s, 4.0), history=[[1, 0.01], [2, 0.03], [3, 0.04]])
             for s in (0, 1)]
    benchmark.write(benchmark.report(curve, []), curve, stem)
    with open(stem + '_epochs.png', 'rb') as f:
        assert f.read(4) == b'\x89PNG'


def test_eval_history_reads_every_evaluation(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [dict(loss=1.0, step=10), {'coco/bbox_mAP': 0.01, 'step': 1},
             {'coco/bbox_mAP': 0.03, 'step': 2}]
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines))
    assert eval_history(str(tmp_path)) == [[1, 0.01], [2, 0.03]]
    # VOCMetric's records: the headline is AP at IoU 0.5
    (vis / 'scalars.json').write_text(json.dumps(
        {'pascal_voc/mAP': 0.3, 'pascal_voc/AP50': 0.4, 'pascal_voc/AP75': 0.2, 'step': 5}))
    assert eval_history(str(tmp_path)) == [[5, 0.4]]


def test_every_run_config_exists_and_coco_runs_keep_their_teacher(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, spec in benchmark.RUNS.items():
        assert '::' in spec.config or osp.isfile(osp.join(ROOT, spec.config)), name
    assert not benchmark.needs_teacher('configs/retinanet/retinanet_r50_fpn_2x_coco.py')
    assert benchmark.needs_teacher('configs/frs/frs_retina_r101_r50.py')
    commands = []

    class Failed:
        returncode = 1

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return Failed()
    monkeypatch.setattr(subprocess, 'run', fake_run)
    for ckpt in (None, 'r101.pth'):
        try:
            benchmark.train_one('COCO FRS', benchmark.RUNS['COCO FRS'], 0, str(tmp_path), ckpt,
                                1, TRAIN)
        except RuntimeError as err:
            assert 'COCO FRS seed 0 failed' in str(err)
    assert commands[0][2] == 'configs/frs/frs_retina_r101_r50.py'
    # no --teacher-ckpt: the config's model-zoo teacher stays; given: it is used
    assert not any('teacher_ckpt' in c for c in commands[0])
    assert 'model.teacher_ckpt=r101.pth' in commands[1]


def test_coco_preset_without_coco_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # no data/coco here
    import shutil
    shutil.copytree(osp.join(ROOT, 'configs'), str(tmp_path / 'configs'), dirs_exist_ok=True)
    runs, presets = benchmark.RUNS, benchmark.PRESETS
    with pytest.raises(FileNotFoundError,
                       match='COCO student: dataset files not found.*data/coco/'):
        benchmark.check_data(runs, presets['coco_retina'])
    with pytest.raises(FileNotFoundError, match='VOC student: dataset files not found.*VOCdevkit'):
        benchmark.check_data(runs, presets['voc_retina'])
    benchmark.check_data(runs, presets['synthetic_voc'])   # generated, never missing


def test_table_shows_the_teacher_and_the_gap_closed():
    results = [fake('student', 0, 20.0), fake('student', 1, 22.0),
               dict(fake('FRS', 0, 23.0), teacher_run='big'),
               dict(fake('FRS', 1, 24.0), teacher_run='big'),
               dict(fake('plain', 0, 21.0), teacher_run=None)]
    teachers = [fake('big', 0, 27.0)]
    rows = {line.split(' | ')[0][2:]: line.split(' | ')
            for line in benchmark.table(results, teachers=teachers).splitlines()[2:]}
    # the teacher is a column, not a row, when it is not among the results
    assert set(rows) == {'student', 'FRS', 'plain'}
    # gains +3, +2 -> +2.5; gap = 27 - mean(20, 22) = 6 -> 42 %
    assert rows['FRS'][7:10] == ['+2.5 (+3.0, +2.0)', '27.0', '42 %']
    assert rows['plain'][8:10] == ['', '']          # not a Distiller run: no teacher
    # a teacher below its student: the gap cannot be closed
    weak = benchmark.table(results[:4], teachers=[fake('big', 0, 20.5)]).splitlines()[3]
    assert weak.split(' | ')[8:10] == ['20.5', '–']


def test_old_run_info_finds_the_teacher_by_name():
    results = [fake('teacher', 0, 8.0), fake('student', 0, 4.0), fake('TID', 0, 6.0)]
    row = benchmark.table(results).splitlines()[4].split(' | ')
    assert row[8:10] == ['8.0', '50 %']


def test_gap_closed_uses_the_student_of_the_same_seeds():
    results = [fake('student', 0, 4.0), fake('student', 1, 6.0),
               dict(fake('FRS', 0, 5.0), teacher_run='teacher')]
    row = benchmark.table(results, teachers=[fake('teacher', 0, 8.0)]).splitlines()[3]
    # seed 0 only: gain +1.0 over a gap of 8 - 4 (not 8 - mean(4, 6))
    assert row.split(' | ')[7:10] == ['+1.0 (+1.0)', '8.0', '25 %']


def test_several_teachers_get_one_checkpoint_option_each(tmp_path, monkeypatch):
    """A run taught by several teacher runs gets model.teachers.<name>.ckpt per teacher
    (each teacher run trained once, at seed 0)."""
    monkeypatch.chdir(ROOT)
    spec = benchmark.RUNS['MT PKD two teachers']
    assert benchmark.spec_teachers(spec) == dict(retina='teacher', gfl='GFL teacher')
    original, trained = benchmark.runner.train_one, {}

    def fake_train_one(name, spec, seed, work_dir, teacher_ckpt, *args, **kwargs):
        trained.setdefault(name, []).append((seed, teacher_ckpt))

    monkeypatch.setattr(benchmark.runner, 'train_one', fake_train_one)
    monkeypatch.setattr(benchmark.runner, 'final_checkpoint', lambda wd: wd + '/last.pth')
    monkeypatch.setattr(benchmark.runner, 'check_data', lambda runs, names: None)
    benchmark.run_matrix(benchmark.RUNS, ['MT PKD two teachers'], str(tmp_path), TRAIN,
                         seeds=[0, 1])
    assert trained['teacher'] == [(0, None)] and trained['GFL teacher'] == [(0, None)]
    seeds, ckpts = zip(*trained['MT PKD two teachers'])
    assert seeds == (0, 1)
    assert ckpts[0] == dict(retina=osp.join(str(tmp_path), 'teacher', 'seed0', 'last.pth'),
                            gfl=osp.join(str(tmp_path), 'GFL_teacher', 'seed0', 'last.pth'))
    commands = []

    class Failed:
        returncode = 1

    monkeypatch.setattr(subprocess, 'run', lambda cmd, **kw: commands.append(cmd) or Failed())
    with pytest.raises(RuntimeError, match='failed'):
        original('MT PKD two teachers', spec, 0, str(tmp_path), dict(retina='r.pth', gfl='g.pth'),
                 1, TRAIN)
    assert 'model.teachers.retina.ckpt=r.pth' in commands[0]
    assert 'model.teachers.gfl.ckpt=g.pth' in commands[0]
    assert not any('model.teacher_ckpt' in c for c in commands[0])


def test_table_of_several_teachers_uses_the_strongest():
    results = [fake('student', 0, 4.0),
               dict(fake('MT', 0, 7.0), teacher_run=dict(a='weak', b='strong'))]
    teachers = [fake('weak', 0, 6.0), fake('strong', 0, 10.0)]
    row = benchmark.table(results, teachers=teachers).splitlines()[3]
    # gain +3 over the gap to the strongest teacher, 10 - 4
    assert row.split(' | ')[7:10] == ['+3.0 (+3.0)', '10.0', '50 %']


def test_gain_against_the_longest_matching_student():
    results = [fake('student', 0, 4.0), fake('std student', 0, 30.0),
               fake('std LF student', 0, 20.0), fake('std LF pseudo', 0, 50.0),
               fake('std FRS', 0, 40.0)]
    rows = {line.split(' | ')[0][2:]: line.split(' | ')
            for line in benchmark.table(results).splitlines()[2:]}
    assert rows['std LF pseudo'][7] == '+30.0 (+30.0)'   # against 'std LF student'
    assert rows['std FRS'][7] == '+10.0 (+10.0)'         # against 'std student'


def test_a_distillation_run_named_like_a_teacher_still_gets_its_gain():
    results = [fake('student', 0, 4.0),
               dict(fake('PKD from the big teacher', 0, 6.0), teacher_run='big')]
    row = benchmark.table(results, teachers=[fake('big', 0, 8.0)]).splitlines()[3]
    assert row.split(' | ')[7:10] == ['+2.0 (+2.0)', '8.0', '50 %']
