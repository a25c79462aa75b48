"""tools/visualize_masks.py and tools/measure_cost.py on the shipped synthetic
TID config (tiny generated data, random teacher weights)."""
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

import pytest
from mmengine.registry import DefaultScope

from mmkd_det.datasets.synthetic import generate_synthetic_dataset
from mmkd_det.models.distillers import load_model_cfg
from tests.conftest import save_weights

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/tid/tid_retina_r18w48_r18w32_synthetic.py')


def run_tool(tool, *args):
    """Run ``tools/<tool>`` from the repository root; it must succeed."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tools')
    root = str(tmp / 'data')
    generate_synthetic_dataset(root, num_train=4, num_val=2, img_size=64, seed=0,
                               formats=('coco',))
    teacher = load_model_cfg(osp.join(ROOT, 'configs/retinanet/retinanet_r18w48_synthetic.py'),
                             'teacher')
    with DefaultScope.overwrite_default_scope('mmkd_det'):   # module fixture: no autouse scope
        ckpt = save_weights(teacher, str(tmp / 'teacher.pth'))
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={root}/',
               f'val_dataloader.dataset.data_root={root}/', 'train_dataloader.batch_size=2']
    return tmp, ckpt, options


def test_visualize_masks_writes_one_png_per_image(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'masks')
    run_tool('visualize_masks.py', CONFIG, '--teacher-ckpt', ckpt, '--num-images', '2',
             '--out', out, *options)
    for i in range(2):
        with open(osp.join(out, f'loss_tid_img{i}.png'), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_measure_cost_reports_mask_share(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'cost.json')
    run_tool('measure_cost.py', CONFIG, '--teacher-ckpt', ckpt, '--iters', '2', '--warmup', '1',
             '--json', out, *options)
    with open(out) as f:
        res = json.load(f)
    t = res['mean_seconds']
    assert res['batch'][0] == 2
    assert 0 < t['masks'] < t['distill']
    assert t['masks'] <= t['losses'] < t['distill']   # TID builds its masks in its forward
    assert res['masks_share_of_distill_step'] == pytest.approx(t['masks'] / t['distill'])
    assert res['distill_over_student_plus_teacher'] == pytest.approx(
        t['distill'] / (t['student'] + t['teacher']))
    # the method's own work, the floor it sets and the Distiller's overhead
    parts = t['student'] + t['teacher']
    assert 0 < t['loss_alone'] < t['distill']
    assert res['floor_over_student_plus_teacher'] == pytest.approx(
        (parts + t['loss_alone']) / parts)
    assert res['overhead_seconds'] == pytest.approx(t['distill'] - parts - t['loss_alone'])
    per_iter = res['samples_seconds']
    ratios = [d / (a + b) for d, a, b in
              zip(per_iter['distill'], per_iter['student'], per_iter['teacher'])]
    assert len(ratios) == 2
    assert res['paired_ratio']['median'] == pytest.approx(statistics.median(ratios))
    assert t['distill'] == pytest.approx(statistics.mean(per_iter['distill']))
    # memory: each step's parameters + its peak above the state before it
    mem, total = res['memory_bytes'], res['memory_total_bytes']
    for phase in ('student', 'teacher', 'distill'):
        assert total[phase] == mem[phase]['params'] + mem[phase]['activations']
        assert mem[phase]['activations'] > 0
    # the distill step holds both models and TID's adapters (student 64 -> teacher
    # 96 FPN channels)
    from mmkd_det.apis import build_distiller
    _, model = build_distiller(CONFIG, teacher_ckpt=ckpt)
    adapters = sum(4 * p.numel() for p in model.distill_losses.parameters())
    assert adapters > 0
    assert mem['distill']['params'] == (mem['student']['params'] + mem['teacher']['params'] +
                                        adapters)
    assert mem['student']['params'] == sum(4 * p.numel() for p in model.student.parameters())
    assert res['memory_distill_over_student_plus_teacher'] == pytest.approx(
        total['distill'] / (total['student'] + total['teacher']))


def test_loss_alone_step_is_the_distill_steps_loss_work(setup):
    """The loss-alone phase gives the losses' own parameters (TID's adapters) the
    gradients the whole distillation step gives them, on the same batch."""
    import torch
    from mmengine.logging import MessageHub
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from measure_cost import Step, parse_options
    _, ckpt, options = setup
    MessageHub.get_current_instance().update_info('iter', 10 ** 6)   # after warm-up
    step = Step.from_config(CONFIG, parse_options(options[1:]), ckpt)
    step.model.train()
    grads = []
    for phase in (step.distill, step.loss_alone):
        phase()
        grads.append({n: p.grad.clone() for n, p in
                      step.model.distill_losses.named_parameters()})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for k in grads[0]:
        a, b = grads[1][k], grads[0][k]
        assert b.abs().max() > 0, k
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * b.abs().max().item()), k
    # and no gradient reaches the student's own weights
    assert all(p.grad is None for p in step.model.student.parameters())


def test_peak_extra_bytes_sees_a_known_allocation():
    # a 96 MiB tensor made and freed inside fn, after a 64 MiB one made and
    # freed before it: the peak above the state before fn is the 96 MiB
    script = (
        'import sys, torch; sys.path.insert(0, "tools"); from measure_cost import '
        'peak_extra_bytes; a = torch.ones(16 * 2**20); del a; '
        'print(peak_extra_bytes(lambda: torch.ones(24 * 2**20).sum(), repeats=2))')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120,
                          env=dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) / 2**20 == pytest.approx(96, rel=0.05)


def test_grad_norms_reports_each_term_relative_to_the_task(setup):
    tmp, ckpt, options = setup
    out = str(tmp / 'grads.json')
    skd = osp.join(ROOT, 'configs/skd/skd_retina_r18w48_r18w32_synthetic.py')
    run_tool('grad_norms.py', skd, '--teacher-ckpt', ckpt, '--batches', '1', '--json', out,
             *options)
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
    run_tool('compare_mmrazor_step.py', '--teacher-ckpt', ckpt, '--iters', '2', '--warmup', '0',
             '--json', out, *options)
    with open(out) as f:
        res = json.load(f)
    v = res['pkd_value']
    assert v['mmkd_det'] == pytest.approx(v['mmrazor'], rel=1e-5) and v['mmkd_det'] > 0
    assert res['ratio_mmkd_det_over_mmrazor'] == pytest.approx(
        res['mean_seconds']['mmkd_det'] / res['mean_seconds']['mmrazor'])
    ours, razor = res['samples_seconds']['mmkd_det'], res['samples_seconds']['mmrazor']
    assert res['median_per_iteration_ratio'] == pytest.approx(
        statistics.median(a / b for a, b in zip(ours, razor)))


def test_build_distiller_refuses_a_plain_detector_config():
    from mmkd_det.apis import build_distiller
    plain = osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py')
    with pytest.raises(ValueError, match="model.type is 'RetinaNet'.*whose model is a Distiller"):
        build_distiller(plain)


def test_measure_throughput_reports_floor_and_takes_distiller_options(tmp_path):
    out = str(tmp_path / 'throughput.json')
    pkd = osp.join(ROOT, 'configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py')
    run_tool('measure_throughput.py', pkd, '--device', 'cpu', '--batch', '2', '--size', '64',
             '64', '--iters', '2', '--warmup', '0', '--json', out,
             '--distiller-options', 'inplace_activations=disable')
    with open(out) as f:
        res = json.load(f)
    assert res['distiller_options'] == {'inplace_activations': 'disable'}
    assert res['batch'] == [2, 3, 64, 64]
    t = res['mean_seconds']
    parts = t['student'] + t['teacher']
    assert res['floor_over_student_plus_teacher'] == pytest.approx(
        (parts + t['loss_alone']) / parts)
    assert res['overhead_seconds'] == pytest.approx(t['distill'] - parts - t['loss_alone'])
    assert res['images_per_s']['distill'] == pytest.approx(2 / t['distill'])
    assert set(res['minor_page_faults']) == {'student', 'teacher', 'distill', 'loss_alone'}


FAULT_SCRIPT = '''
import sys, torch
sys.path.insert(0, "tools")
from measure_cost import time_steps

class Fake:                         # two phases: one touches 64 MiB of fresh pages, one nothing
    inputs = torch.zeros(1)
    def touch(self):
        torch.ones(2 ** 24).sum()   # above glibc's mmap threshold: unmapped again on free
    def idle(self):
        pass

faults = {}
time_steps(Fake(), iters=3, warmup=1, phases=('touch', 'idle'), faults=faults)
print(faults['touch'], faults['idle'])
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='getrusage page faults')
def test_time_steps_counts_each_phases_page_faults():
    proc = subprocess.run([sys.executable, '-c', FAULT_SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    touch, idle = map(float, proc.stdout.split())
    pages = 2 ** 26 // 4096
    assert touch > 0.9 * pages      # every fresh page of the tensor faults once
    assert idle < 0.05 * pages


def test_time_steps_times_the_parts_inside_each_step(setup):
    """The parts are timed inside their steps: each iteration's parts of a step sum
    to at most that step, the distill step has all three, and the plain student
    step has no teacher forward."""
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from measure_cost import PARTS, Step, parse_options, parts_line, time_ratios, time_steps
    _, ckpt, options = setup
    step = Step.from_config(CONFIG, parse_options(options[1:]), ckpt)
    samples, parts = {}, {}
    mean = time_steps(step, iters=2, warmup=1, samples=samples, parts=parts)
    assert set(parts) == {'student.student_forward', 'student.backward',
                          'teacher.teacher_forward', *(f'distill.{p}' for p in PARTS)}
    for phase in ('student', 'teacher', 'distill'):
        inside = [k for k in parts if k.startswith(phase + '.')]
        for i, total in enumerate(samples[phase]):
            assert 0 < sum(parts[k][i] for k in inside) <= total
    res = time_ratios(mean, samples, parts)
    assert res['parts_seconds']['distill.backward'] == statistics.mean(parts['distill.backward'])
    line = parts_line(res)
    assert line.startswith('inside distill (alone): teacher_forward') and line.count(' s (') == 3
