"""mmkd_det.analysis.throughput on CPU at a small size: the figures of a
full-size step, random weights."""
import os.path as osp

import pytest

from mmkd_det.analysis.throughput import (full_size_step, measure_throughput,
                                          random_teacher_distiller, throughput_repeats_table,
                                          throughput_summary, throughput_table)
from tests.conftest import ROOT


def test_measure_throughput_reports_floor_and_takes_distiller_options():
    pkd = osp.join(ROOT, 'configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py')
    options = {'inplace_activations': 'disable'}
    step = full_size_step(pkd, 'cpu', 2, (64, 64), options)
    res = measure_throughput(step, iters=2, warmup=0, config=pkd, device='cpu',
                             distiller_options=options)
    assert res['distiller_options'] == {'inplace_activations': 'disable'}
    assert res['batch'] == [2, 3, 64, 64]
    t = res['mean_seconds']
    parts = t['student'] + t['teacher']
    assert res['floor_over_student_plus_teacher'] == pytest.approx(
        (parts + t['loss_alone']) / parts)
    assert res['overhead_seconds'] == pytest.approx(t['distill'] - parts - t['loss_alone'])
    assert res['images_per_s']['distill'] == pytest.approx(2 / t['distill'])
    assert set(res['minor_page_faults']) == {'student', 'teacher', 'distill', 'loss_alone'}
    assert throughput_summary(res).splitlines()[0].startswith(' student: ')
    row = throughput_table({pkd: res}).splitlines()[2].split(' | ')
    assert row[0] == '| pkd_retina_r18w48_r18w32_synthetic.py' and row[3] == 'no'
    assert float(row[5]) == pytest.approx(res['images_per_s']['distill'], abs=0.005)


def test_random_teacher_distiller_refuses_a_plain_detector_config():
    plain = osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py')
    with pytest.raises(ValueError, match='is not a distillation config'):
        random_teacher_distiller(plain)


def test_amp_steps_run_under_autocast_and_match_float32():
    """``--amp``: the teacher's records are computed in bfloat16 on CPU (float16 on
    CUDA), the losses stay within bfloat16 rounding of the float32 step, and every
    student parameter the losses reach gets a finite gradient."""
    import torch
    pkd = osp.join(ROOT, 'configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py')
    step = full_size_step(pkd, 'cpu', 2, (64, 64), amp=True)
    model = step.model
    with step.autocast():
        model.record_step(step.inputs, step.samples, step.teacher_inputs)
    fpn = model.teacher_recorder.get('fpn')
    assert all(t.dtype == torch.bfloat16 for t in fpn)
    model.reset_records()
    with torch.no_grad():
        full = model.loss(step.inputs, step.samples, step.teacher_inputs)
        with step.autocast():
            half = model.loss(step.inputs, step.samples, step.teacher_inputs)
    for key in ('distill.loss_pkd', 'loss_cls'):
        assert _total(half[key]) == pytest.approx(_total(full[key]), rel=0.05), key
    step.distill()
    grads = [p.grad for p in model.student.neck.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    res = measure_throughput(step, iters=1, warmup=0)
    assert res['amp'] is True and '(autocast)' in throughput_summary(res)


def test_released_step_frees_its_model_without_the_garbage_collector():
    """The timing wrappers make a Step <-> model cycle; with the collector off, the
    model of a released and dropped Step is gone at once (the GPU check measures
    several configs in one process, and an unfreed model counts in the next one's
    peak memory)."""
    import gc
    import weakref

    import torch
    pkd = osp.join(ROOT, 'configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py')
    gc.collect()
    gc.disable()
    try:
        kept = full_size_step(pkd, 'cpu', 2, (64, 64))
        kept.distill()
        model = weakref.ref(kept.model)
        del kept
        assert model() is not None  # the cycle: only the collector would free it
        step = full_size_step(pkd, 'cpu', 2, (64, 64))
        step.distill()
        step.student()
        step.loss_alone()
        assert step._leaves
        # PKD's inputs: every FPN level of the teacher and of the student, float32
        with torch.no_grad():
            feats = [*step.model.student.extract_feat(step.inputs),
                     *step.model.teacher.extract_feat(step.inputs)]
        assert step.loss_input_bytes() == 4 * sum(f.numel() for f in feats)
        step.drop_loss_inputs()  # forgotten, and fixed again when needed
        assert not hasattr(step, '_leaves')
        step.loss_alone()
        assert step._leaves
        model = weakref.ref(step.model)
        step.release()
        del step
        assert model() is None
    finally:
        gc.enable()
        gc.collect()


def test_repeats_table_gives_median_and_range_per_config_and_precision():
    def run(student, distill, ratio, gib, amp=False):
        return dict(
            images_per_s=dict(student=student, distill=distill),
            distill_over_student_plus_teacher=ratio,
            amp=amp,
            max_memory_allocated_bytes=dict(
                student=gib * 2**30, teacher=gib * 2**29, distill=2 * gib * 2**30))

    runs = [{'a/frs.py': run(40.0, 30.0, 1.10, 3.0), 'a/skd.py': run(38.0, 20.0, 1.40, 3.1)},
            {'a/frs.py': run(34.0, 24.0, 1.05, 3.5)},
            {'a/frs.py': run(36.0, 26.0, 1.20, 3.0),
             'a/frs_amp.py': run(50.0, 40.0, 1.0, 2.0, amp=True)}]
    rows = [r.split(' | ') for r in throughput_repeats_table(runs).splitlines()[2:]]
    assert len(rows) == 3
    frs, skd, amp = rows
    # FRS: medians of (40, 34, 36), (30, 24, 26), (1.10, 1.05, 1.20), (3.0, 3.5, 3.0) GiB
    assert frs[:3] == ['| frs.py', 'no', '3']
    assert frs[3:7] == ['36.0 (34.0–40.0)', '26.0 (24.0–30.0)', '1.10 (1.05–1.20)',
                        '3.00 (3.00–3.50)']
    assert frs[7:] == ['1.50 (1.50–1.75)', '6.00 (6.00–7.00) |']
    assert skd[2:4] == ['1', '38.0 (38.0–38.0)'] and amp[1] == 'yes'
    with pytest.raises(ValueError, match='at least one run'):
        throughput_repeats_table([])


def _total(value) -> float:
    """A logged loss (a tensor or a list of per-level tensors) as one float."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return sum(float(v) for v in values)
