"""Cross-family pairs: the recorder's ``teacher_levels`` pairs the hand-chosen levels of a
tiny Faster R-CNN teacher (FPN P2-P6, strides 4-64) with those of a tiny RetinaNet
student (P3-P7, strides 8-128); bad pairings fail at build naming both sides' shapes."""
import pytest
import torch
import torch.nn.functional as F

from mmkd_det.models.distillers.records import split_record_sources
from mmkd_det.models.recorders import RecordError
from mmkd_det.models.utils.level_pairing import level_pairing_hint
from mmkd_det.registry import MODELS
from tests.conftest import save_weights, tiny_model_cfg

SIZE = 128


@pytest.fixture(scope='module')
def frcnn_ckpt(tmp_path_factory):
    """A tiny Faster R-CNN teacher (width 16: 32-channel FPN), seed 1."""
    return save_weights(
        tiny_model_cfg('faster', 16), str(tmp_path_factory.mktemp('t') / 't.pth'), 1)


def _distiller(ckpt, fpn: dict, loss: dict, student: str = 'retina', teacher: str = 'faster'):
    return MODELS.build(
        dict(
            type='Distiller',
            student=tiny_model_cfg(student, 8),
            teacher=tiny_model_cfg(teacher, 16),
            teacher_ckpt=ckpt,
            recorders=dict(fpn=fpn),
            distill_losses=dict(loss_pkd=loss),
            probe_size=SIZE))


def _pkd_by_hand(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """PKD of one level, written out: per-channel z-scores over (N, H, W) (unbiased std,
    +1e-6 on sigma), then half the mean squared difference."""

    def z(f):
        flat = f.transpose(0, 1).reshape(f.shape[1], -1)
        mean = flat.mean(1, keepdim=True)
        std = ((flat - mean).pow(2).sum(1, keepdim=True) / (flat.shape[1] - 1)).sqrt()
        return (flat - mean) / (std + 1e-6)

    return (z(s) - z(t)).pow(2).mean() / 2


def _step(model):
    """One loss step on two random 128 px images; the student's and teacher's full FPN
    outputs computed again, outside the Distiller, on the same input."""
    from tests.test_configs import _samples
    torch.manual_seed(0)
    x = torch.rand(2, 3, SIZE, SIZE)
    losses = model.loss(x, _samples(SIZE))
    with torch.no_grad():
        s_feats = model.student.neck(model.student.backbone(x))
        t_feats = model.teacher.neck(model.teacher.backbone(x))
    return losses['distill.loss_pkd'], s_feats, t_feats


def test_split_record_sources_pairs_teacher_levels():
    student, teacher = split_record_sources(
        dict(
            fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=(1, 2, 3, 4)),
            cls=dict(source='bbox_head', index=0, teacher_source='rpn_head')))
    assert student == dict(
        fpn=dict(source='neck', levels=[0, 1, 2, 3]), cls=dict(source='bbox_head', index=0))
    assert teacher['fpn'] == dict(source='neck', index=None, levels=[1, 2, 3, 4])
    assert teacher['cls'] == dict(source='rpn_head', index=0, levels=None)


@pytest.mark.parametrize('spec,match', [
    (dict(levels=[0, 1, 2], teacher_levels=[1, 2, 3, 4]),
     r'levels=\[0, 1, 2\] \(3 student levels\) and teacher_levels=\[1, 2, 3, 4\] \(4 teacher'),
    (dict(teacher_levels='match_stride'), 'teacher_levels must be a non-empty list'),
    (dict(levels=[0, 1.0]), 'levels must be a non-empty list'),
])
def test_level_lists_are_checked_before_build(spec, match):
    with pytest.raises(ValueError, match=match):
        split_record_sources(dict(fpn=dict(source='neck', **spec)))


def test_level_mapping_pairs_the_hand_chosen_levels(frcnn_ckpt):
    """Student P3-P6 (its levels 0-3) against teacher P3-P6 (its levels 1-4): the
    Distiller's PKD equals the hand computation on exactly those tensors, through the
    1x1 adapters (16 -> 32 channels), with nothing resized."""
    fpn = dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4])
    model = _distiller(frcnn_ckpt, fpn, dict(type='PKDLoss', adapter='auto', resize_student=False))
    loss = model.distill_losses['loss_pkd']
    assert not any(loss._needs_resize.values())
    value, s_feats, t_feats = _step(model)
    convs = loss.adapters['s_feats'].convs
    expected = sum(
        _pkd_by_hand(convs[i](s_feats[s]), t_feats[t])
        for i, (s, t) in enumerate(zip([0, 1, 2, 3], [1, 2, 3, 4])))
    assert s_feats[0].shape[-1] == t_feats[1].shape[-1] == SIZE // 8
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    # pairing by index instead (teacher P2-P5, the student resized up) is another loss
    by_index = sum(
        _pkd_by_hand(
            F.interpolate(
                convs[i](s_feats[i]),
                size=t_feats[i].shape[2:],
                mode='bilinear',
                align_corners=False), t_feats[i]) for i in range(4))
    assert abs(float(by_index) - float(value)) > 1e-3


def test_resize_and_adapter_path(frcnn_ckpt):
    """mmrazor's pairing by index: student P3-P6 with teacher P2-P5 (twice the size),
    resized (bilinear) and adapted; equal to the hand computation."""
    model = _distiller(frcnn_ckpt, dict(source='neck', levels=[0, 1, 2, 3]),
                       dict(type='PKDLoss', adapter='auto', resize_student=True))
    loss = model.distill_losses['loss_pkd']
    assert loss._needs_resize['s_feats']
    value, s_feats, t_feats = _step(model)
    convs = loss.adapters['s_feats'].convs
    expected = sum(
        _pkd_by_hand(
            F.interpolate(
                convs[i](s_feats[i]),
                size=t_feats[i].shape[2:],
                mode='bilinear',
                align_corners=False), t_feats[i]) for i in range(4))
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


def test_out_of_range_teacher_level_names_both_sides_levels(frcnn_ckpt):
    with pytest.raises(RecordError) as err:
        _distiller(frcnn_ckpt,
                   dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 5]),
                   dict(type='PKDLoss'))
    msg = str(err.value)
    assert 'levels [5] out of range' in msg and "teacher output of 'neck' has 5 levels" in msg
    assert '0: (32, 32, 32), 1: (32, 16, 16)' in msg and 'teacher_levels' in msg
    # the student's recorded levels (probe 128 px: strides 8..64 of the RetinaNet student)
    assert "student's records" in msg and '(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)' in msg


def test_count_mismatch_names_both_sides_and_the_pairing(frcnn_ckpt):
    """All five student levels against four teacher levels: both sides' (C, H, W) and
    the positions of equal stride in the recorded lists."""
    with pytest.raises(ValueError) as err:
        _distiller(frcnn_ckpt, dict(source='neck', teacher_levels=[1, 2, 3, 4]),
                   dict(type='PKDLoss', adapter='auto'))
    msg = str(err.value)
    assert 's_feats has 5 levels but t_feats has 4' in msg
    assert ('Student s_feats: [0: (16, 16, 16), 1: (16, 8, 8), 2: (16, 4, 4), 3: (16, 2, 2), '
            '4: (16, 1, 1)]; teacher t_feats: [0: (32, 16, 16), 1: (32, 8, 8), 2: (32, 4, 4), '
            '3: (32, 2, 2)]') in msg
    assert 'levels=[0, 1, 2, 3], teacher_levels=[0, 1, 2, 3]' in msg


def test_size_mismatch_proposes_teacher_levels(frcnn_ckpt):
    """All five levels on both sides, no resize: the error lists both sides and names
    the stride pairing (P7 of the student and P2 of the teacher have no partner)."""
    with pytest.raises(ValueError) as err:
        _distiller(frcnn_ckpt, dict(source='neck'),
                   dict(type='PKDLoss', adapter='auto', resize_student=False))
    msg = str(err.value)
    assert 'spatial size of s_feats' in msg and 'resize_student=True' in msg
    assert '4: (16, 1, 1)' in msg and '4: (32, 2, 2)' in msg
    assert 'levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4]' in msg


def test_pairing_hint_is_one_to_one():
    """Deep levels of a small probe image are all 1 x 1: they are not paired."""
    s = [(1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1), (1, 8, 1, 1)]
    t = [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1)]
    assert 'levels=[0, 1], teacher_levels=[1, 2]' in level_pairing_hint(s, t)
    assert 'No level has the same H, W' in level_pairing_hint(s, [(1, 8, 3, 3)])


def test_head_family_mismatch_fails_at_build(tmp_path):
    """RetinaNet teacher (9 anchors x 3 classes) -> GFL student (1 x 3): head logits
    cannot be compared; the error names both sides' shapes and the fix."""
    ckpt = save_weights(tiny_model_cfg('retina', 16), str(tmp_path / 'r.pth'), 1)
    cfg = dict(
        type='Distiller',
        student=tiny_model_cfg('gfl', 8),
        teacher=tiny_model_cfg('retina', 16),
        teacher_ckpt=ckpt,
        recorders=dict(cls=dict(source='bbox_head', index=0)),
        distill_losses=dict(loss_kd=dict(type='LogitKDLoss')),
        probe_size=64)
    with pytest.raises(ValueError) as err:
        MODELS.build(cfg)
    msg = str(err.value)
    assert 'differ at level 0: (3, 8, 8) vs (27, 8, 8)' in msg
    assert 'Student s_logits: [0: (3, 8, 8)' in msg and 'teacher t_logits: [0: (27, 8, 8)' in msg
    assert 'same head family' in msg and 'num_classes' in msg and 'PKD' in msg


def test_two_stage_teacher_has_no_bbox_head(frcnn_ckpt):
    """A head record of a one-stage student cannot be found on a Faster R-CNN teacher:
    the error names the teacher's detector type and its heads."""
    with pytest.raises(KeyError) as err:
        MODELS.build(
            dict(
                type='Distiller',
                student=tiny_model_cfg('retina', 8),
                teacher=tiny_model_cfg('faster', 16),
                teacher_ckpt=frcnn_ckpt,
                recorders=dict(cls=dict(source='bbox_head', index=0)),
                distill_losses=dict(loss_kd=dict(type='LogitKDLoss')),
                probe_size=64))
    msg = str(err.value)
    assert "'bbox_head' in the teacher (FasterRCNN)" in msg and "'rpn_head'" in msg


def test_dense_head_losses_check_the_detectors_at_build(frcnn_ckpt):
    """TID decodes both detectors' dense heads: a Faster R-CNN teacher (no top-level
    bbox_head) is refused when the Distiller is built, through check_detectors."""
    from mmkd_det.models.losses import TIDLoss
    student = MODELS.build(tiny_model_cfg('retina', 8))
    teacher = MODELS.build(tiny_model_cfg('faster', 16))
    loss = TIDLoss()
    loss.check_detectors(student, MODELS.build(tiny_model_cfg('retina', 16)))  # fine
    with pytest.raises(ValueError, match='TIDLoss needs a dense head `bbox_head` on the teacher'):
        loss.check_detectors(student, teacher)
    # through the Distiller: TID reading the teacher's RPN outputs (3 anchors x 1 class) as
    # the student's (3 anchors x 1 class with 1 class and 3 anchors per location)
    s_cfg = tiny_model_cfg('retina', 8, num_classes=1)
    s_cfg['bbox_head']['anchor_generator'].update(scales_per_octave=1, ratios=[0.5, 1.0, 2.0])
    with pytest.raises(ValueError, match='needs a dense head .bbox_head. on the teacher'):
        MODELS.build(
            dict(type='Distiller', student=s_cfg, teacher=tiny_model_cfg('faster', 16),
                 teacher_ckpt=frcnn_ckpt,
                 recorders=dict(
                     fpn=dict(source='neck', levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4]),
                     cls=dict(source='bbox_head', index=0, levels=[0, 1, 2, 3],
                              teacher_source='rpn_head', teacher_levels=[1, 2, 3, 4]),
                     reg=dict(source='bbox_head', index=1, levels=[0, 1, 2, 3],
                              teacher_source='rpn_head', teacher_levels=[1, 2, 3, 4])),
                 distill_losses=dict(loss_tid=dict(type='TIDLoss')), probe_size=SIZE))
