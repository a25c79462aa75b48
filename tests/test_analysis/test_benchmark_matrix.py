"""Run matrices: the ablation configs equal the cfg-options they replaced, a
user's matrix file is read and checked, and the runner resumes."""
import json
import os
import os.path as osp
import subprocess

import pytest
from mmengine.config import Config, DictAction

from mmkd_det.analysis import benchmark
from mmkd_det.analysis.benchmark import MatrixError, RunSpec, load_matrix, run_matrix
from tests.conftest import ROOT

_T = 'model.distill_losses.loss_tid.'
_LIT = _T + 'low_band=scaled'
#: the runs that were (base config, --cfg-options) before they became config files
OPTION_RUNS = {
    'GFL TID cls only': ('tid/tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'tasks=[cls]']),
    'GFL TID reg only': ('tid/tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'tasks=[reg]']),
    'GFL TID raw IoU': ('tid/tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'loc_score=iou']),
    'GFL TID key only': ('tid/tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'areas=[key]']),
    'GFL TID weak only': ('tid/tid_gfl_r18w48_r18w32_synthetic.py', [_T + 'areas=[weak]']),
    'TID low band scaled': ('tid/tid_retina_r18w48_r18w32_synthetic.py', [_LIT]),
    'TID gamma 0.025': ('tid/tid_retina_r18w48_r18w32_synthetic.py', [_LIT, _T + 'gamma=0.025']),
    'TID gamma 0.25': ('tid/tid_retina_r18w48_r18w32_synthetic.py', [_LIT, _T + 'gamma=0.25']),
    'TID key indicator': ('tid/tid_retina_r18w48_r18w32_synthetic.py',
                          [_LIT, _T + 'key_mode=indicator']),
    'TID Eq9 as printed': ('tid/tid_retina_r18w48_r18w32_synthetic.py',
                           [_LIT, _T + 'info_decay=as_printed']),
    'TID batch top-k': ('tid/tid_retina_r18w48_r18w32_synthetic.py',
                        [_LIT, _T + 'topk_scope=batch']),
    'TID Eq9 as printed + low band constant': ('tid/tid_retina_r18w48_r18w32_synthetic.py',
                                               [_T + 'info_decay=as_printed']),
    'SKD weights x0.1': ('skd/skd_retina_r18w48_r18w32_synthetic.py',
                         ['model.distill_losses.loss_skd.loss_weight=0.1']),
}


def _options(items):
    """``key=value`` strings parsed as tools/train.py's --cfg-options."""
    return {k: DictAction._parse_iterable(v) for k, v in (i.split('=', 1) for i in items)}


@pytest.mark.parametrize('name', sorted(OPTION_RUNS))
def test_ablation_config_equals_the_options_it_replaced(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    base, options = OPTION_RUNS[name]
    spec = benchmark.RUNS[name]
    assert spec.cfg_options == () and spec.config != 'configs/' + base
    old = Config.fromfile('configs/' + base)
    old.merge_from_dict(_options(options))
    assert Config.fromfile(spec.config).model.to_dict() == old.model.to_dict()


def test_presets_name_known_runs_and_teachers_train_once():
    for preset, names in benchmark.PRESETS.items():
        assert set(names) <= set(benchmark.RUNS), preset
    teachers = benchmark.teacher_runs(benchmark.RUNS)
    assert teachers == {
        'teacher', 'GFL teacher', 'MaskRCNN teacher', 'FRCNN teacher', 'std teacher',
        'std GFL teacher', 'std weak teacher', 'RTMDet teacher', 'YOLOX teacher'}
    assert benchmark.RUNS['GFL LD'].teacher == 'GFL teacher'
    assert benchmark.RUNS['COCO FRS'].teacher is None        # the config's model-zoo teacher


def test_standard_tier_runs_are_the_quick_configs_with_the_tier_overlay():
    std, std_teacher = ('configs/_base_/tiers/synthetic_standard.py',
                        'configs/_base_/tiers/synthetic_standard_teacher.py')
    for name, spec in benchmark.RUNS.items():
        if not name.startswith('std ') or 'weak' in name:
            continue
        if name == 'std LF student':  # the student on a quarter of the standard tier's images
            assert spec.config == benchmark.RUNS['student'].config and spec.overlays == (std, )
            assert 'train_dataloader.dataset.indices=750' in spec.cfg_options
            continue
        quick = benchmark.RUNS[name[4:]]
        assert spec.config == quick.config and spec.cfg_options == quick.cfg_options, name
        assert spec.overlays == ((std_teacher, ) if name.endswith('teacher') else (std, )), name
        # taught by the tier's own teacher of the same detector
        assert spec.teacher == (quick.teacher and 'std ' + quick.teacher), name
    assert set(benchmark.PRESETS['standard']) == {
        'std teacher', 'std student', 'std FRS', 'std TID', 'std SKD'}
    # the weak teacher: the teacher detector on the student's schedule
    weak = benchmark.RUNS['std weak teacher']
    assert weak.config == benchmark.RUNS['teacher'].config and weak.overlays == (std, )
    assert benchmark.RUNS['std TID from weak teacher'].teacher == 'std weak teacher'


def test_overlays_reach_train_py_and_an_interrupted_run_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'plain.py').write_text("model = dict(type='RetinaNet')\n")
    (tmp_path / 'tier.py').write_text('train_cfg = dict(max_epochs=8)\n')
    runs = load_matrix(write_matrix(tmp_path / 'm.py', '''
runs = {'student': dict(config='plain.py', overlays=['tier.py'], seeds=[0])}
'''))
    commands, threads = [], []

    def fake(cmd, **kwargs):
        commands.append(cmd)
        threads.append(kwargs['env']['OMP_NUM_THREADS'])
        return FakeTraining()(cmd[:5] + cmd[cmd.index('--cfg-options'):], **kwargs)
    monkeypatch.setattr(subprocess, 'run', fake)
    run_matrix(runs, ['student'], 'wd', 'train.py')
    assert commands[0][5:7] == ['--overlay', 'tier.py'] and '--resume' not in commands[0]
    info = benchmark.finished('wd', 'student', 0)
    assert info['overlays'] == ['tier.py'] and info['resumed'] is False
    # interrupted after a checkpoint: no run_info -> trained again with --resume, log kept
    os.remove(osp.join('wd', 'student', 'seed0', 'run_info.json'))
    import shutil
    shutil.rmtree(osp.join('wd', 'student', 'seed0', '20260101_000000'))
    log = osp.join('wd', 'student', 'seed0', 'train_stdout.log')
    with open(log, 'w') as f:
        f.write('first part\n')
    commands.clear()
    run_matrix(runs, ['student'], 'wd', 'train.py', threads=1)
    assert commands[0][5:8] == ['--overlay', 'tier.py', '--resume']
    assert threads == [str(os.cpu_count() or 1), '1']   # all CPUs by default, else --threads
    assert benchmark.finished('wd', 'student', 0)['resumed'] is True
    with open(log) as f:
        assert f.read().startswith('first part')


def test_matrix_overlay_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'plain.py').write_text("model = dict(type='RetinaNet')\n")
    with pytest.raises(MatrixError, match=r"run 'student': field 'overlays': nope.py does not"):
        load_matrix(write_matrix(tmp_path / 'm.py', '''
runs = {'student': dict(config='plain.py', overlays=['nope.py'])}
'''))


def write_matrix(path, text):
    path.write_text(text)
    return str(path)


def test_user_matrix_is_read_with_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = write_matrix(tmp_path / 'm.py', '''
seeds = [3, 4]
runs = {
    'teacher': dict(config='configs/retinanet/retinanet_r18w48_synthetic.py', seeds=[0]),
    'student': dict(config='configs/retinanet/retinanet_r18w32_synthetic.py'),
    'FRS w.2': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
                    cfg_options=['model.distill_losses.loss_frs_fpn.loss_weight=0.01'],
                    teacher='teacher'),
    'KD': dict(config='configs/kd/kd_retina_r18w48_r18w32_synthetic.py', teacher_ckpt='t.pth'),
}
''')
    runs = load_matrix(path)
    assert list(runs) == ['teacher', 'student', 'FRS w.2', 'KD']
    assert runs['teacher'] == RunSpec('configs/retinanet/retinanet_r18w48_synthetic.py',
                                      seeds=(0, ))
    assert runs['student'].seeds == (3, 4)                  # the file's default
    assert runs['FRS w.2'] == RunSpec(
        'configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
        ('model.distill_losses.loss_frs_fpn.loss_weight=0.01', ), (3, 4), 'teacher', None)
    assert runs['KD'].teacher_ckpt == 't.pth'
    # the command line's seeds win over the file's; the folder drops dots
    assert benchmark.run_seeds(runs['student'], [7]) == [7]
    assert benchmark.run_seeds(RunSpec('x.py')) == [0, 1, 2]
    assert benchmark.run_dir('w', 'FRS w.2', 3) == osp.join('w', 'FRS_w2', 'seed3')


STUDENT = "'student': dict(config='configs/retinanet/retinanet_r18w32_synthetic.py')"


@pytest.mark.parametrize('entry, message', [
    ("'FRS': dict(cfg_options=[])", "run 'FRS': field 'config' is missing"),
    ("'FRS': dict(config='configs/nope.py')", "run 'FRS': field 'config': configs/nope.py does "
                                              'not exist'),
    ("'FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py', lr=1)",
     r"run 'FRS': unknown field\(s\) \['lr'\]"),
    ("'FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py', "
     "cfg_options='a=1')", "run 'FRS': field 'cfg_options' must be a list of 'key=value'"),
    ("'FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py', seeds=[0, 'a'])",
     "run 'FRS': field 'seeds' must be a non-empty list of integers"),
    ("'FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py', teacher='T')",
     "run 'FRS': field 'teacher': 'T' is not another run of this matrix"),
    ("'FRS': 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py'",
     "run 'FRS': expected a dict with a 'config' field"),
    ("'stu.dent': dict(config='configs/retinanet/retinanet_r18w32_synthetic.py')",
     "runs 'student' and 'stu.dent' would share the work dir"),
])
def test_a_bad_matrix_entry_names_the_run_and_the_field(entry, message, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = write_matrix(tmp_path / 'bad.py', f'runs = {{{STUDENT}, {entry}}}\n')
    with pytest.raises(MatrixError, match=f'benchmark matrix {path}: ' + message):
        load_matrix(path)


def test_a_matrix_without_runs_is_refused(tmp_path):
    path = write_matrix(tmp_path / 'empty.py', 'seeds = [0]\n')
    with pytest.raises(MatrixError, match='needs a non-empty dict `runs'):
        load_matrix(path)
    with pytest.raises(MatrixError, match='file not found'):
        load_matrix(str(tmp_path / 'missing.py'))


class FakeTraining:
    """Stands in for tools/train.py: writes a checkpoint and an evaluation whose
    mAP is 0.01 * seed + 0.1 for a Distiller config, and records the commands."""

    def __init__(self):
        self.commands = []

    def __call__(self, cmd, **kwargs):
        self.commands.append(cmd)
        config, wd = cmd[2], cmd[4]
        options = dict(o.split('=', 1) for o in cmd[6:])
        ckpt = osp.join(wd, 'epoch_1.pth')
        open(ckpt, 'w').close()
        with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)
        os.makedirs(osp.join(wd, '20260101_000000', 'vis_data'))
        m = 0.01 * int(options['randomness.seed']) + (0.1 if 'frs' in config else 0.0)
        with open(osp.join(wd, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
            f.write(json.dumps({'coco/bbox_mAP': m, 'step': 1}) + '\n')
        return subprocess.CompletedProcess(cmd, 0)


def test_user_matrix_trains_teacher_first_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # configs and work dirs relative to here
    (tmp_path / 'plain.py').write_text("model = dict(type='RetinaNet')\n")
    (tmp_path / 'frs.py').write_text("model = dict(type='Distiller')\n")
    runs = load_matrix(write_matrix(tmp_path / 'm.py', '''
seeds = [0, 1]
runs = {'student': dict(config='plain.py'), 'big': dict(config='plain.py'),
        'FRS': dict(config='frs.py', teacher='big', cfg_options=['a.b=1'])}
'''))
    fake = FakeTraining()
    monkeypatch.setattr(subprocess, 'run', fake)
    results = run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py')
    # the teacher run first, at seed 0 only; then the matrix
    assert [(c[4], c[-1] if 'frs' in c[2] else '') for c in fake.commands] == [
        (osp.join('wd', 'big', 'seed0'), ''), (osp.join('wd', 'student', 'seed0'), ''),
        (osp.join('wd', 'student', 'seed1'), ''),
        (osp.join('wd', 'FRS', 'seed0'), 'model.teacher_ckpt=wd/big/seed0/epoch_1.pth'),
        (osp.join('wd', 'FRS', 'seed1'), 'model.teacher_ckpt=wd/big/seed0/epoch_1.pth')]
    assert fake.commands[3][5:8] == ['--cfg-options', 'randomness.seed=0', 'a.b=1']
    assert [(r['name'], r['seed'], r['metrics']['coco/bbox_mAP']) for r in results] == [
        ('student', 0, 0.0), ('student', 1, 0.01), ('FRS', 0, 0.1), ('FRS', 1, 0.11)]
    md = benchmark.report(results, benchmark.baseline(runs, 'wd'))
    assert '+10.0 (+10.0, +10.0)' in md.splitlines()[3]
    # resumed: nothing is trained again, the same results come back
    fake.commands.clear()
    assert run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py') == results
    assert fake.commands == []
    # an interrupted run (no run_info yet) is trained again, alone
    os.remove(osp.join('wd', 'FRS', 'seed1', 'run_info.json'))
    os.remove(osp.join('wd', 'FRS', 'seed1', 'last_checkpoint'))
    import shutil
    shutil.rmtree(osp.join('wd', 'FRS', 'seed1', '20260101_000000'))
    again = run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py', seeds=[1])
    assert [(r['name'], r['seed'], r['metrics']) for r in again] == [
        (r['name'], r['seed'], r['metrics']) for r in results[1::2]]
    assert [c[4] for c in fake.commands] == [osp.join('wd', 'FRS', 'seed1')]
    # report-only reads the finished runs back
    assert benchmark.collect(runs, ['student', 'FRS'], 'wd') == results


def test_a_run_without_an_evaluation_stops_with_its_work_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'plain.py').write_text("model = dict(type='RetinaNet')\n")

    def no_evaluation(cmd, **kwargs):      # trains, but mmdet logged no mAP
        open(osp.join(cmd[4], 'last_checkpoint'), 'w').close()
        return subprocess.CompletedProcess(cmd, 0)
    monkeypatch.setattr(subprocess, 'run', no_evaluation)
    with pytest.raises(RuntimeError, match=r"'?student seed 0 trained but logged no box mAP.*"
                                           r'see wd/student/seed0'):
        benchmark.train_one('student', RunSpec('plain.py'), 0, 'wd', None, 1, 'train.py')


def _student_type(config: str) -> str:
    """The detector type a config trains: its model's, or a Distiller's student's."""
    from mmkd_det.models.distillers import load_model_cfg
    model = Config.fromfile(osp.join(ROOT, config)).model
    if model.get('type') == 'Distiller':
        model = load_model_cfg(model.student, 'student')
    return model['type']


def test_every_distillation_run_gains_against_a_student_of_its_detector(monkeypatch):
    """The report pairs a run's gains with '<leading words> student' (else 'student'):
    for every built-in distillation run that run must train the same detector as the
    run's student (a GFL student distilled from a RetinaNet teacher against the GFL
    student, not the RetinaNet one)."""
    from mmkd_det.analysis.benchmark.report import _baseline_of
    monkeypatch.chdir(ROOT)
    runs = benchmark.RUNS
    names = {n: n for n in runs}
    types = {}
    for name, spec in runs.items():
        if not spec.teacher or spec.config.startswith('configs/_base_') or 'coco' in name.lower():
            continue
        base = _baseline_of(name, names)
        assert base is not None, name
        for n in (name, base):
            if runs[n].config not in types:
                types[runs[n].config] = _student_type(runs[n].config)
        assert types[spec.config] == types[runs[base].config], (name, base)


def test_earlier_results_stand_in_for_a_lost_work_dir(tmp_path, monkeypatch):
    import shutil
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'plain.py').write_text("model = dict(type='RetinaNet')\n")
    (tmp_path / 'frs.py').write_text("model = dict(type='Distiller')\n")
    runs = load_matrix(write_matrix(tmp_path / 'm.py', '''
runs = {'student': dict(config='plain.py'), 'big': dict(config='plain.py'),
        'FRS': dict(config='frs.py', teacher='big', cfg_options=['a.b=1'])}
'''))
    fake = FakeTraining()
    monkeypatch.setattr(subprocess, 'run', fake)
    results = run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py', seeds=[0, 1])
    benchmark.write(benchmark.report(results, []), results, 'old')
    shutil.rmtree('wd')                                  # another machine: the work dir is gone
    earlier = benchmark.load_earlier(['old.json'], runs)
    assert sorted(earlier) == [('FRS', 0), ('FRS', 1), ('student', 0), ('student', 1)]
    assert {r['source'] for r in earlier.values()} == {'old.json'}
    # every run is in the earlier results: nothing is trained, the teacher neither
    fake.commands.clear()
    again = run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py', seeds=[0, 1], earlier=earlier)
    assert fake.commands == []
    assert [(r['name'], r['seed'], r['metrics']) for r in again] == [
        (r['name'], r['seed'], r['metrics']) for r in results]
    # a new seed: only it is trained, and the teacher again (its checkpoint is gone)
    more = run_matrix(runs, ['student', 'FRS'], 'wd', 'train.py', seeds=[0, 1, 2], earlier=earlier)
    assert [c[4] for c in fake.commands] == [
        osp.join('wd', 'big', 'seed0'), osp.join('wd', 'student', 'seed2'),
        osp.join('wd', 'FRS', 'seed2')]
    assert [(r['name'], r['seed']) for r in more] == [('student', 0), ('student', 1),
                                                      ('student', 2), ('FRS', 0), ('FRS', 1),
                                                      ('FRS', 2)]
    # gains paired with the earlier students; the table names the runs it did not train
    md = benchmark.report(more, benchmark.baseline(runs, 'wd', [0, 1, 2], earlier))
    assert '+10.0 (+10.0, +10.0, +10.0)' in md
    assert md.endswith('Read from earlier results, not trained in this work dir: FRS seed 0 '
                       '(old.json); FRS seed 1 (old.json); student seed 0 (old.json); '
                       'student seed 1 (old.json).')
    assert benchmark.collect(runs, ['FRS'], 'nowhere', [0, 1], earlier) == [
        dict(r, source='old.json') for r in results[2:]]


def test_earlier_results_of_another_definition_or_file_are_refused(tmp_path):
    runs = {'FRS': RunSpec('frs.py', cfg_options=('a.b=1', ))}
    record = dict(name='FRS', seed=0, config='frs.py', overlays=[], metrics={},
                  cfg_options=['randomness.seed=0', 'a.b=1', 'model.teacher_ckpt=x.pth'])
    (tmp_path / 'ok.json').write_text(json.dumps([record, dict(record, name='other')]))
    # where the teacher lay does not matter; runs the matrix does not define are ignored
    assert list(benchmark.load_earlier([str(tmp_path / 'ok.json')], runs)) == [('FRS', 0)]
    old = [dict(record, cfg_options=['randomness.seed=0'])]
    (tmp_path / 'old.json').write_text(json.dumps(old))
    with pytest.raises(benchmark.ResultsError,
                       match=r'FRS seed 0 was trained with '
                       r"\{'cfg_options': \['randomness.seed=0'\]\}, but the run is now "
                       r"defined with \{'cfg_options': \['randomness.seed=0', 'a.b=1'\]\}. "
                       r'Train it again'):
        benchmark.load_earlier([str(tmp_path / 'old.json')], runs)
    (tmp_path / 'cost.json').write_text(json.dumps({'rows': []}))
    with pytest.raises(benchmark.ResultsError, match='not a benchmark results file'):
        benchmark.load_earlier([str(tmp_path / 'cost.json')], runs)
    with pytest.raises(benchmark.ResultsError, match='cannot read it'):
        benchmark.load_earlier([str(tmp_path / 'missing.json')], runs)
