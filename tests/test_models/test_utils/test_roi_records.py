"""roi_records: the captured student RoIs are the ones mmdet's own roi_head.loss samples,
RoI pooling equals mmdet's extractor, and the teacher's logits equal a direct call."""
import pytest
import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.testing import demo_mm_inputs

from mmkd_det.models.utils.roi_records import (RoICapture, build_roi_extractor,
                                               capture_student_rois, gt_rois, pool_roi_features,
                                               select_rois, teacher_roi_outputs)
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def _faster(width=8, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(tiny_model_cfg('faster', width))
    model.init_weights()
    return model


def _batch(model, seed=0):
    torch.manual_seed(seed)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 1],
                          num_classes=3)
    return model.data_preprocessor(data, True)


def _rois():
    # sqrt(area) 8, 150, 250, 500, 5.7 px: levels 0, 1, 2, 3, 0 (finest_scale 56:
    # floor(log2(scale / 56)) clipped to [0, 3])
    return torch.tensor([[0, 2., 2., 10., 10.], [1, 10., 5., 160., 155.], [0, 0., 0., 250., 250.],
                         [1, 0., 0., 500., 500.], [0, 30., 20., 34., 28.]])


def test_pool_equals_mmdet_extractor_and_is_channel_independent():
    student = _faster()
    ext = student.roi_head.bbox_roi_extractor
    torch.manual_seed(1)
    feats = [torch.randn(2, 16, 256 // s, 256 // s) for s in (4, 8, 16, 32)]
    rois = _rois()
    assert ext.map_roi_levels(rois, 4).tolist() == [0, 1, 2, 3, 0]
    ref = ext(feats, rois)
    ours = pool_roi_features(ext, feats + [torch.randn(2, 16, 1, 1)], rois)  # extra level unused
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    # 32 channels through the 16-channel extractor: each half pools as mmdet would
    wide = [torch.cat([f, 2 * f + 1], 1) for f in feats]
    out = pool_roi_features(ext, wide, rois)
    assert out.shape == (5, 32, 7, 7)
    torch.testing.assert_close(out[:, :16], ref)
    torch.testing.assert_close(out[:, 16:], ext([2 * f + 1 for f in feats], rois))
    with pytest.raises(ValueError, match='levels=\\[0, ..., 3\\]'):
        pool_roi_features(ext, feats[:3], rois)


def test_pool_keeps_every_level_in_the_graph_and_handles_no_rois():
    student = _faster()
    ext = student.roi_head.bbox_roi_extractor
    feats = [torch.randn(1, 16, 64 // s, 64 // s, requires_grad=True) for s in (4, 8, 16, 32)]
    pool_roi_features(ext, feats, torch.tensor([[0, 2., 2., 10., 10.]])).sum().backward()
    assert all(f.grad is not None for f in feats)
    assert feats[0].grad.abs().sum() > 0 and feats[3].grad.abs().sum() == 0
    empty = pool_roi_features(ext, feats, torch.zeros(0, 5))
    assert empty.shape == (0, 16, 7, 7)


def test_explicit_roi_align_config():
    ext = build_roi_extractor(
        dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=2,
                                                       sampling_ratio=1, aligned=True),
             out_channels=1, featmap_strides=[1]))
    # f(x, y) = x: RoIAlign (aligned, one sample per bin) reads the bin centres
    # x1 - 0.5 + (j + 0.5) * w / 2, exactly (bilinear interpolation of a linear map)
    feat = torch.arange(8.).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    out = pool_roi_features(ext, [feat], torch.tensor([[0, 0., 0., 4., 4.], [0, 2., 0., 6., 2.]]))
    torch.testing.assert_close(out[:, 0], torch.tensor([[[0.5, 2.5]] * 2, [[2.5, 4.5]] * 2]))


def test_capture_equals_mmdet_sampling_and_changes_nothing(monkeypatch):
    """Same step: the captured sampled RoIs are those mmdet's bbox forward received
    (spied at class level), labels those of bbox_head.get_targets, logits the
    ones its loss read; proposals those the RPN returned. A second step with
    the same seed without the capture gives the same task losses."""
    student = _faster()
    data = _batch(student)
    seen = {}
    bbox_forward, loss_and_target = StandardRoIHead._bbox_forward, \
        type(student.roi_head.bbox_head).loss_and_target
    rpn_loss_and_predict = RPNHead.loss_and_predict

    def spy_forward(self, x, rois):
        seen['rois'] = rois.clone()
        return bbox_forward(self, x, rois)

    def spy_target(self, cls_score, bbox_pred, rois, sampling_results, rcnn_train_cfg, **kw):
        seen['labels'] = self.get_targets(sampling_results, rcnn_train_cfg)[0]
        seen['cls_score'] = cls_score
        return loss_and_target(self, cls_score, bbox_pred, rois, sampling_results,
                               rcnn_train_cfg, **kw)

    def spy_rpn(self, *args, **kwargs):
        losses, results = rpn_loss_and_predict(self, *args, **kwargs)
        seen['proposals'] = [r.bboxes.clone() for r in results]
        return losses, results

    monkeypatch.setattr(StandardRoIHead, '_bbox_forward', spy_forward)
    monkeypatch.setattr(type(student.roi_head.bbox_head), 'loss_and_target', spy_target)
    monkeypatch.setattr(RPNHead, 'loss_and_predict', spy_rpn)
    torch.manual_seed(5)
    with capture_student_rois(student) as capture:
        captured_losses = student.loss(data['inputs'], data['data_samples'])
    assert 'loss' not in vars(student.roi_head) and 'bbox_loss' not in vars(student.roi_head)
    rec = capture.take([s.gt_instances for s in data['data_samples']])
    assert rec.rois.shape[0] > 10 and rec.pos.any() and (~rec.pos).any()
    torch.testing.assert_close(rec.rois, seen['rois'], rtol=0, atol=0)
    assert torch.equal(rec.labels, seen['labels'])
    assert torch.equal(rec.pos, rec.labels < student.roi_head.bbox_head.num_classes)
    assert rec.cls_score is seen['cls_score'] and rec.cls_score.requires_grad
    assert len(rec.proposals) == 2
    for ours, ref in zip(rec.proposals, seen['proposals']):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    assert rec.feats[0].shape[1] == 16 and len(rec.feats) == 5
    torch.manual_seed(5)
    plain = student.loss(data['inputs'], data['data_samples'])
    for key, value in captured_losses.items():
        value = torch.stack(value).sum() if isinstance(value, list) else value
        ref = torch.stack(plain[key]).sum() if isinstance(plain[key], list) else plain[key]
        torch.testing.assert_close(value, ref, rtol=0, atol=0)
    torch.testing.assert_close(seen['rois'], rec.rois, rtol=0, atol=0)  # same sampling


def test_nested_captures_restore_and_errors():
    student = _faster()
    data = _batch(student)
    gts = [s.gt_instances for s in data['data_samples']]
    with capture_student_rois(student) as outer:
        with capture_student_rois(student) as inner:
            student.loss(data['inputs'], data['data_samples'])
        assert 'loss' in vars(student.roi_head)  # the outer wrapper is back
    assert 'loss' not in vars(student.roi_head) and 'bbox_loss' not in vars(student.roi_head)
    torch.testing.assert_close(outer.take(gts).rois, inner.record.rois)
    with pytest.raises(RuntimeError, match='none were captured'):
        outer.take(gts)
    with pytest.raises(RuntimeError, match='another batch'):
        inner.take(gts[::-1])
    with pytest.raises(RuntimeError, match='student_context'):
        RoICapture().take()
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    with pytest.raises(TypeError, match='two-stage student'):
        with capture_student_rois(retina):
            pass


def test_select_rois():
    student = _faster()
    data = _batch(student)
    gts = [s.gt_instances for s in data['data_samples']]
    with capture_student_rois(student) as capture:
        student.loss(data['inputs'], data['data_samples'])
    rec = capture.take(gts)
    rois, labels = select_rois('sampled', rec)
    assert rois is rec.rois and labels is rec.labels
    rois, labels = select_rois('proposals', rec)
    assert labels is None and rois.shape[0] == sum(len(p) for p in rec.proposals)
    n0 = len(rec.proposals[0])
    assert rois[:n0, 0].eq(0).all() and rois[n0:, 0].eq(1).all()
    torch.testing.assert_close(rois[:, 1:], torch.cat(rec.proposals))
    rois, labels = select_rois('gt', gt_instances=gts)
    assert rois[:, 0].tolist() == [0, 0, 0, 1]
    torch.testing.assert_close(rois[:, 1:], torch.cat([g.bboxes for g in gts]))
    assert torch.equal(labels, torch.cat([g.labels for g in gts]))
    assert gt_rois(gts)[0].shape == (4, 5)
    with pytest.raises(ValueError, match='rois must be one of'):
        select_rois('anchors', rec)


def test_teacher_logits_equal_a_direct_call():
    teacher = _faster(16, seed=3)
    teacher.eval()
    torch.manual_seed(2)
    feats = [torch.randn(2, 32, 256 // s, 256 // s) for s in (4, 8, 16, 32, 64)]
    rois = _rois()
    with torch.enable_grad():
        cls, reg = teacher_roi_outputs(teacher, feats, rois)
    head = teacher.roi_head
    with torch.no_grad():
        ref_cls, ref_reg = head.bbox_head(head.bbox_roi_extractor(feats[:4], rois))
    assert not cls.requires_grad and cls.shape == (5, 4)
    torch.testing.assert_close(cls, ref_cls, rtol=0, atol=0)
    torch.testing.assert_close(reg, ref_reg, rtol=0, atol=0)


def test_pool_teacher_student_uses_each_detectors_extractor():
    from mmkd_det.models.utils.roi_records import pool_teacher_student
    student, teacher = _faster(8), _faster(16, seed=1)
    teacher.roi_head.bbox_roi_extractor.roi_layers[0].sampling_ratio = 2  # tell them apart
    torch.manual_seed(3)
    s_feats = [torch.randn(2, 16, 256 // s, 256 // s, requires_grad=True) for s in (4, 8, 16, 32)]
    t_feats = [torch.randn(2, 32, 256 // s, 256 // s, requires_grad=True) for s in (4, 8, 16, 32)]
    rois = _rois()
    s_rois, t_rois = pool_teacher_student(s_feats, t_feats, rois, student, teacher)
    torch.testing.assert_close(s_rois, student.roi_head.bbox_roi_extractor(s_feats, rois))
    torch.testing.assert_close(t_rois, teacher.roi_head.bbox_roi_extractor(t_feats, rois))
    assert s_rois.requires_grad and not t_rois.requires_grad
    one = build_roi_extractor(
        dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', output_size=3,
                                                       sampling_ratio=1),
             out_channels=16, featmap_strides=[4, 8, 16, 32]))
    s_rois, t_rois = pool_teacher_student(s_feats, t_feats, rois, roi_extractor=one)
    assert s_rois.shape == (5, 16, 3, 3) and t_rois.shape == (5, 32, 3, 3)
    torch.testing.assert_close(s_rois, one(s_feats, rois))
