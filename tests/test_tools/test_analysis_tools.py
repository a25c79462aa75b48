"""The command lines of tools/analysis_tools and tools/misc, run as a user runs
them (a subprocess from the repository root), on the shipped synthetic configs
with tiny generated data and random teacher weights."""
import json
import os.path as osp
import statistics
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_analysis.tiny_setup import CONFIG, tiny_setup


def run_tool(tool, *args, ok=True):
    """Run ``tools/<tool>`` from the repository root; with ``ok`` it must succeed."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    return tiny_setup(tmp_path_factory.mktemp('tools'))


def test_visualize_masks_writes_one_png_per_image(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'masks')
    run_tool('analysis_tools/visualize_masks.py', CONFIG, '--teacher-ckpt', ckpt,
             '--num-images', '2', '--out', out, *options)
    for i in range(2):
        with open(osp.join(out, f'loss_tid_img{i}.png'), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_grad_norms_reports_each_term_relative_to_the_task(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'grads.json')
    skd = osp.join(ROOT, 'configs/skd/skd_retina_r18w48_r18w32_synthetic.py')
    run_tool('analysis_tools/grad_norms.py', skd, '--teacher-ckpt', ckpt, '--batches', '1',
             '--json', out, *options)
    with open(out) as f:
        terms = json.load(f)['terms']
    assert set(terms) == {'task', 'distill.loss_skd.loss_at', 'distill.loss_skd.loss_am',
                          'distill.loss_skd.loss_nld'}
    assert terms['task']['grad_norm_over_task'] == pytest.approx(1.0)
    for t in terms.values():
        assert t['grad_norm'] > 0
        assert t['grad_norm_over_task'] == pytest.approx(
            t['grad_norm'] / terms['task']['grad_norm'])


def test_compare_mmrazor_step_gives_equal_pkd_values(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'razor.json')
    run_tool('analysis_tools/compare_mmrazor_step.py', '--teacher-ckpt', ckpt, '--iters', '2',
             '--warmup', '0', '--json', out, *options)
    with open(out) as f:
        res = json.load(f)
    v = res['pkd_value']
    assert v['mmkd_det'] == pytest.approx(v['mmrazor'], rel=1e-5) and v['mmkd_det'] > 0
    assert res['ratio_mmkd_det_over_mmrazor'] == pytest.approx(
        res['mean_seconds']['mmkd_det'] / res['mean_seconds']['mmrazor'])
    ours, razor = res['samples_seconds']['mmkd_det'], res['samples_seconds']['mmrazor']
    assert res['median_per_iteration_ratio'] == pytest.approx(
        statistics.median(a / b for a, b in zip(ours, razor)))


def fake_run(name, seed, m):
    """A finished benchmark run's run_info with every COCO box metric = ``m`` %."""
    keys = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l']
    return dict(name=name, seed=seed, metrics={'coco/' + k: m / 100 for k in keys})


def test_benchmark_reports_a_user_matrix(tmp_path):
    matrix = tmp_path / 'mine.py'
    matrix.write_text("""seeds = [0, 1]
runs = {'student': dict(config='configs/retinanet/retinanet_r18w32_synthetic.py'),
        'my FRS': dict(config='configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
                       teacher_ckpt='t.pth')}
""")
    work = tmp_path / 'work'
    for name, folder, values in (('student', 'student', (4.0, 5.0)),
                                 ('my FRS', 'my_FRS', (5.0, 5.5))):
        for seed, m in enumerate(values):
            (work / folder / f'seed{seed}').mkdir(parents=True)
            (work / folder / f'seed{seed}' / 'run_info.json').write_text(
                json.dumps(fake_run(name, seed, m)))
    run_tool('analysis_tools/benchmark.py', '--matrix', str(matrix), '--work-dir', str(work),
             '--report-only')
    rows = (work / 'results.md').read_text().splitlines()
    assert rows[2].startswith('| student | 4.5 ± 0.7 |')
    assert rows[3].startswith('| my FRS | 5.2 ± 0.4 |') and '+0.8 (+1.0, +0.5)' in rows[3]
    assert (work / 'results.png').read_bytes()[:4] == b'\x89PNG'
    # a bad entry stops the command with a message naming the run and the field
    matrix.write_text("runs = {'my FRS': dict(config='configs/frs/frs.py', seed=[0])}\n")
    proc = run_tool('analysis_tools/benchmark.py', '--matrix', str(matrix), '--report-only',
                    ok=False)
    assert proc.returncode == 1 and "run 'my FRS': unknown field(s) ['seed']" in proc.stderr


def test_demo_summarizes_seeds(tmp_path):
    dirs = []
    for seed, m in enumerate((4.0, 5.0)):
        (tmp_path / f's{seed}').mkdir()
        (tmp_path / f's{seed}' / 'results.json').write_text(
            json.dumps([fake_run('student', 0, m)]))
        dirs.append(str(tmp_path / f's{seed}'))
    out = run_tool('misc/demo.py', '--summarize', *dirs).stdout
    assert '| student | 4.5 ± 0.7 |' in out and out.rstrip().endswith('| 4.0, 5.0 |')


def test_measure_throughput_repeats_tables_stored_runs_and_refuses_other_files(tmp_path):
    """``--repeats`` reads the committed H200 runs (JSON only) and measures nothing."""
    runs = [osp.join(ROOT, 'docs/measurements', f'gpu_h200_fp32{s}.json')
            for s in ('', '_run2', '_run3')]
    out = str(tmp_path / 'repeats')
    run_tool('analysis_tools/measure_throughput.py', '--repeats', *runs, '--out', out)
    with open(out + '.md') as f:
        rows = f.read().splitlines()[2:]
    student = []
    for path in runs:
        with open(path) as f:
            student.append(json.load(f)['configs/frs/frs_retina_r101_r50.py']
                           ['images_per_s']['student'])
    frs = rows[0].split(' | ')
    assert frs[:3] == ['| frs_retina_r101_r50.py', 'no', '3']
    assert frs[3] == (f'{statistics.median(student):.1f} '
                      f'({min(student):.1f}–{max(student):.1f})')
    single = str(tmp_path / 'single.json')
    with open(single, 'w') as f:
        json.dump({'config': 'x.py', 'images_per_s': {}}, f)
    proc = run_tool('analysis_tools/measure_throughput.py', '--repeats', single, '--out', out,
                    ok=False)
    assert proc.returncode != 0 and 'not a {config: result} file' in proc.stderr
    proc = run_tool('analysis_tools/measure_throughput.py', '--repeats', *runs, ok=False)
    assert proc.returncode != 0 and '--repeats needs --out' in proc.stderr
