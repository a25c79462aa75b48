"""mmkd_det.analysis.recordable and tools/analysis_tools/print_records.py: module
rows, strides and levels of tiny detectors against numbers derived from their
configs, the 'record as' column against the Distiller's own recorder, the
neck comparison's suggestions, and the command line on shipped configs."""
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmkd_det.analysis.recordable import (build_random_detector, compare_levels, default_input_size,
                                          detector_cfgs, recordable_rows, records_report,
                                          row_levels)
from mmkd_det.models.distillers.teacher import record_forward
from mmkd_det.models.recorders import ModuleOutputsRecorder, RecordError
from tests.conftest import ROOT, tiny_model_cfg

SIZE = 64


def fpn_levels(cfg, size=SIZE):
    """(channels, stride, H) of each FPN level, from the config alone: ResNet stage
    i (0-based) has stride 4 * 2**i; the FPN starts at ``start_level`` and halves
    the size for each extra level; a map has ceil(size / stride) rows."""
    fpn = cfg['neck']
    strides = [4 * 2**(fpn.get('start_level', 0) + i) for i in range(fpn['num_outs'])]
    return [(fpn['out_channels'], s, math.ceil(size / s)) for s in strides]


@pytest.fixture(scope='module')
def retina_rows():
    cfg = tiny_model_cfg('retina')
    return cfg, recordable_rows(build_random_detector(cfg, 'model'), (SIZE, SIZE))


def by_name(rows):
    return {r['name']: r for r in rows}


def test_retina_neck_gives_five_levels_with_the_config_strides(retina_rows):
    cfg, rows = retina_rows
    expected = fpn_levels(cfg)
    assert [s for _, s, _ in expected] == [8, 16, 32, 64, 128]  # start_level=1, num_outs=5
    levels = row_levels(by_name(rows)['neck'])
    assert [(lv['channels'], lv['stride'], lv['height']) for lv in levels] == expected
    assert [lv['width'] for lv in levels] == [h for _, _, h in expected]
    assert by_name(rows)['neck']['record'] == "source='neck'"


def test_faster_rcnn_neck_has_strides_4_to_64():
    cfg = tiny_model_cfg('faster')
    rows = by_name(recordable_rows(build_random_detector(cfg, 'model'), (SIZE, SIZE)))
    levels = row_levels(rows['neck'])
    assert [(lv['channels'], lv['stride'], lv['height']) for lv in levels] == fpn_levels(cfg)
    assert [lv['stride'] for lv in levels] == [4, 8, 16, 32, 64]
    # the RPN is run and recordable by index; the RoI head needs proposals
    assert rows['rpn_head']['indices'] == [0, 1]
    assert not rows['roi_head']['recordable'] and 'proposals' in rows['roi_head']['record']


def test_backbone_stage_rows_have_the_stage_channels(retina_rows):
    cfg, rows = retina_rows
    rows = by_name(rows)
    width = cfg['backbone']['base_channels']
    for i in range(
            4):  # ResNet-18 (BasicBlock, expansion 1): width * 2**i channels, stride 4 * 2**i
        (lv, ) = row_levels(rows[f'backbone.layer{i + 1}'])
        assert (lv['channels'], lv['stride']) == (width * 2**i, 4 * 2**i)
        assert lv['height'] == SIZE // (4 * 2**i)


def test_strides_hold_at_a_size_no_stride_divides():
    cfg = tiny_model_cfg('retina')
    rows = by_name(recordable_rows(build_random_detector(cfg, 'model'), (100, 76)))
    levels = row_levels(rows['neck'])
    assert [lv['stride'] for lv in levels] == [8, 16, 32, 64, 128]
    assert [(lv['height'], lv['width']) for lv in levels] == [(13, 10), (7, 5), (4, 3), (2, 2),
                                                              (1, 1)]


def test_record_column_agrees_with_the_distillers_recorder(retina_rows):
    """Every row the tool calls recordable, recorded with its spec by the
    Distiller's own recorder on the same forward, gives the tool's levels; rows
    it calls changed in place are the recorder's modified records; rows that did
    not run capture nothing."""
    cfg, rows = retina_rows
    model = build_random_detector(cfg, 'model')
    specs, expected = {}, {}
    for r in rows:
        for index in r['indices'] or []:
            key = f'{r["name"]}#{index}'
            specs[key] = dict(source=r['name'], index=index)
            expected[key] = [(lv['channels'], lv['height'], lv['width'])
                             for lv in row_levels(r, index)]
    modified = [r['name'] for r in rows if 'in place' in r['record']]
    not_run = [r['name'] for r in rows if 'not run by' in r['record'] or 'container' in r['record']]
    assert len(specs) > 40 and modified and not_run
    for name in modified + not_run:
        specs[name] = dict(source=name)
    recorder = ModuleOutputsRecorder(model, specs)
    with torch.no_grad():
        record_forward(model, recorder, ['bbox_head'], torch.zeros(1, 3, SIZE, SIZE))
    assert sorted(recorder.modified()) == sorted(modified)  # e.g. a BasicBlock's bn2 (+=)
    assert 'backbone.layer1.0.bn2' in modified
    for key, shapes in expected.items():
        got = [tuple(t.shape[1:]) if t.dim() == 4 else None for t in recorder.get(key)]
        assert got == [s if s[0] is not None else None for s in shapes], key
    for name in not_run:
        with pytest.raises(RecordError, match='captured nothing'):
            recorder.get(name)


def test_depth_and_name_filter(retina_rows):
    cfg, _ = retina_rows
    model = build_random_detector(cfg, 'model')
    rows = recordable_rows(model, (SIZE, SIZE), max_depth=1)
    assert [r['name'] for r in rows] == ['data_preprocessor', 'backbone', 'neck', 'bbox_head']
    rows = recordable_rows(model, (SIZE, SIZE), name_filter=r'fpn_convs\.\d$')
    assert [r['name'] for r in rows] == [f'neck.fpn_convs.{i}' for i in range(5)]
    with pytest.raises(ValueError, match='not a valid regular expression'):
        recordable_rows(model, (SIZE, SIZE), name_filter='neck(')


def distiller_cfg(student, teacher):
    return Config(
        dict(
            model=dict(
                type='Distiller', student=student, teacher=teacher, teacher_ckpt='missing.pth')))


def test_pair_of_different_widths_suggests_an_adapter():
    text = records_report(
        distiller_cfg(tiny_model_cfg('retina', 8), tiny_model_cfg('retina', 16)),
        size=(SIZE, SIZE),
        max_depth=1)
    assert "adapter='auto'" in text and 'student vs teacher: 16 vs 32' in text
    assert 'levels=' not in text and 'resize_student' not in text
    assert 'bbox_head index=0: equal shapes' in text


def test_pair_with_different_level_counts_suggests_level_selection():
    student = tiny_model_cfg('retina')
    student['neck']['num_outs'] = 4  # strides 8..64, the teacher keeps 8..128
    text = records_report(
        distiller_cfg(student, tiny_model_cfg('retina')), size=(SIZE, SIZE), max_depth=1)
    assert '4 student levels, 5 teacher levels' in text
    assert 'levels=[0, 1, 2, 3]' in text and 'adapter' not in text


def test_levels_of_equal_stride_at_other_indices_are_paired():
    """Faster R-CNN teacher P2-P6 (strides 4-64), RetinaNet student P3-P7 (8-128)."""
    text = records_report(
        distiller_cfg(tiny_model_cfg('retina'), tiny_model_cfg('faster')),
        size=(SIZE, SIZE),
        max_depth=1)
    assert ("pair levels of equal stride with the recorder's levels=[0, 1, 2, 3], "
            'teacher_levels=[1, 2, 3, 4] (strides [8, 16, 32, 64]') in text
    assert 'dense heads differ (student bbox_head, teacher rpn_head)' in text


def level(c, s, h):
    return dict(channels=c, stride=s, height=h, width=h)


def test_compare_levels_suggestions():
    same = [level(16, 8, 8), level(16, 16, 4)]
    assert compare_levels(same, same) == [
        'neck: 2 levels match in channels, strides and sizes: feature losses need no adapter, '
        'resize or level selection.'
    ]
    (tip, ) = compare_levels(same, [level(16, 8, 7), level(16, 16, 4)])
    assert 'resize_student=True' in tip and 'student level 0 8x8, teacher level 0 7x7' in tip
    (tip, ) = compare_levels(same, [level(16, 32, 2)])
    assert 'no level of equal stride' in tip


def test_detector_cfgs_roles():
    cfg = distiller_cfg(tiny_model_cfg('retina', 8), tiny_model_cfg('retina', 16))
    assert list(detector_cfgs(cfg)) == ['student', 'teacher']
    assert detector_cfgs(cfg, 'teacher')['teacher'].neck.out_channels == 32
    several = Config(
        dict(
            model=dict(
                type='Distiller',
                student=tiny_model_cfg('retina'),
                teachers=dict(
                    big=dict(model=tiny_model_cfg('retina', 16), ckpt='a.pth'),
                    other=dict(model=tiny_model_cfg('faster'), ckpt='b.pth')))))
    assert list(detector_cfgs(several, 'teacher')) == ['big', 'other']
    plain = Config(dict(model=tiny_model_cfg('retina')))
    assert list(detector_cfgs(plain)) == ['model']
    with pytest.raises(ValueError, match='plain detector config'):
        detector_cfgs(plain, 'teacher')


def test_default_size_is_the_test_scale_padded():
    synthetic = Config.fromfile(osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py'))
    assert default_input_size(synthetic, synthetic.model) == (128, 128)
    coco = Config.fromfile(osp.join(ROOT, 'configs/retinanet/retinanet_r50_fpn_2x_coco.py'))
    # Resize scale=(1333, 800) is (w, h); the batch is padded to a multiple of 32
    assert default_input_size(coco, coco.model) == (800, 1344)
    assert default_input_size(Config(dict(model=dict())), None) == (256, 256)


def run_tool(*args):
    proc = subprocess.run(
        [sys.executable,
         osp.join(ROOT, 'tools/analysis_tools/print_records.py'), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300)
    return proc


def test_cli_on_a_detector_config():
    proc = run_tool('configs/retinanet/retinanet_r18w32_synthetic.py', '--size', '64', '64',
                    '--depth', '1')
    assert proc.returncode == 0, proc.stderr[-2000:]
    # retinanet_tiny: 64-channel FPN on ResNet stages 2-4 (strides 8-32) plus one extra level
    neck = next(line for line in proc.stdout.splitlines() if line.startswith('neck '))
    assert '[64x8x8, 64x4x4, 64x2x2, 64x1x1]' in neck and '8, 16, 32, 64' in neck


def test_cli_on_a_distiller_config_without_teacher_weights():
    proc = run_tool('configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py', '--size', '64', '64',
                    '--filter', '^neck$', '--cfg-options', 'model.teacher_ckpt=/nowhere/t.pth')
    assert proc.returncode == 0, proc.stderr[-2000:]
    necks = [line for line in proc.stdout.splitlines() if line.startswith('neck ')]
    assert len(necks) == 2
    assert '[64x8x8, 64x4x4, 64x2x2, 64x1x1]' in necks[0]  # student: 64-channel FPN
    assert '[96x8x8, 96x4x4, 96x2x2, 96x1x1]' in necks[1]  # teacher: 96-channel FPN
    assert "adapter='auto'" in proc.stdout
    proc = run_tool('configs/retinanet/retinanet_r18w32_synthetic.py', '--role', 'teacher')
    assert proc.returncode != 0 and 'plain detector config' in proc.stderr
