"""mmkd_det.analysis.timing and .cost on the shipped synthetic TID config (tiny
generated data, random teacher weights): the steps, their parts, page faults
and memory."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from mmkd_det.analysis.cost import measure, parse_options
from mmkd_det.analysis.timing import PARTS, Step, parts_line, time_ratios, time_steps
from tests.conftest import ROOT
from tests.test_analysis.tiny_setup import CONFIG, tiny_setup


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    return tiny_setup(tmp_path_factory.mktemp('cost'))


def test_measure_cost_reports_mask_share(setup):
    _, ckpt, options = setup
    res = json.loads(json.dumps(measure(CONFIG, options[1:], ckpt, iters=2, warmup=1)))
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
        'import torch; from mmkd_det.analysis.timing import peak_extra_bytes; '
        'a = torch.ones(16 * 2**20); del a; '
        'print(peak_extra_bytes(lambda: torch.ones(24 * 2**20).sum(), repeats=2))')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120,
                          env=dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536'))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) / 2**20 == pytest.approx(96, rel=0.05)


FAULT_SCRIPT = '''
import torch
from mmkd_det.analysis.timing import time_steps

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


def test_loss_alone_repeats_a_loss_on_the_students_own_rois(setup):
    """Mimic pools on the RoIs the student's RPN proposed in the recorded step: the
    loss-alone phase hands the loss that capture again on every call (it is used up
    by one), so it can be timed repeatedly, and it gives the loss's adapters the
    gradients of the whole distillation step."""
    import os.path as osp

    import torch
    from mmengine.registry import DefaultScope

    from mmkd_det.models.distillers import load_model_cfg
    from tests.conftest import save_weights
    tmp, _, options = setup
    config = osp.join(ROOT, 'configs/mimic/mimic_faster_rcnn_r18w48_r18w32_synthetic.py')
    teacher = load_model_cfg(osp.join(ROOT, 'configs/faster_rcnn/faster_rcnn_r18w48_synthetic.py'),
                             'teacher')
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        ckpt = save_weights(teacher, str(tmp / 'frcnn_teacher.pth'))
    step = Step.from_config(config, parse_options(options[1:] + ['model.warmup_iters=0']), ckpt)
    step.model.train()
    torch.manual_seed(0)
    step.distill()
    want = {n: p.grad.clone() for n, p in step.model.distill_losses.named_parameters()}
    for _ in range(2):   # twice: the capture is handed back each time
        step.loss_alone()
    got = {n: p.grad.clone() for n, p in step.model.distill_losses.named_parameters()}
    # a distill step in between gives the loss a new capture object (time_steps
    # interleaves the phases): the fixed record goes to that one
    step.distill()
    step.loss_alone()
    again = {n: p.grad for n, p in step.model.distill_losses.named_parameters()}
    assert want.keys() == got.keys() and any(g.abs().max() > 0 for g in want.values())
    scale = max(g.abs().max().item() for g in want.values())
    for k in want:   # (levels no RoI maps to get none in both)
        assert torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-6 * scale), k
        assert torch.allclose(again[k], want[k], rtol=1e-4, atol=1e-6 * scale), k
