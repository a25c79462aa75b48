"""mmkd_det.analysis.throughput on CPU at a small size: the figures of a
full-size step, random weights."""
import os.path as osp

import pytest

from mmkd_det.analysis.throughput import (full_size_step, measure_throughput,
                                          random_teacher_distiller, throughput_summary)
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


def test_random_teacher_distiller_refuses_a_plain_detector_config():
    plain = osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py')
    with pytest.raises(ValueError, match='is not a distillation config'):
        random_teacher_distiller(plain)
