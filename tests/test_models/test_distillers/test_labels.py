"""Label-free distillation: ``Distiller(labels='pseudo' | 'none')``."""
import copy

import pytest
import torch
from mmengine.structures import InstanceData

from mmkd_det.models.distillers.labels import PseudoLabeler, check_annotated
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, save_weights, tiny_model_cfg


@pytest.fixture
def ckpt(tmp_path):
    return save_weights(tiny_model_cfg('retina', 16), str(tmp_path / 't.pth'), seed=1)


def _build(ckpt, losses, **kw):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='Distiller', student=tiny_model_cfg('retina', 8),
             teacher=tiny_model_cfg('retina', 16), teacher_ckpt=ckpt,
             recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
             distill_losses=losses, probe_size=64, **kw))


def _unlabelled(batch):
    """The batch with its samples' annotations removed (as an image folder gives)."""
    batch = copy.deepcopy(batch)
    for sample in batch['data_samples']:
        sample.gt_instances = InstanceData()
    return batch


PKD = dict(loss_pkd=dict(type='PKDLoss', loss_weight=1.0, adapter='auto'))


def test_select_by_hand():
    """Threshold 0.5, class-wise NMS at IoU 0.5, highest scores first, top 2."""
    pred = InstanceData()
    pred.bboxes = torch.tensor([[0., 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40],
                                [50, 50, 60, 60]])
    pred.scores = torch.tensor([0.9, 0.8, 0.7, 0.4, 0.6])
    pred.labels = torch.tensor([0, 0, 1, 0, 2])
    # box 1 overlaps box 0 (IoU 90/110 = 0.82) in class 0: suppressed; box 2 is
    # class 1: kept; box 3 is below the threshold; then the 2 best: 0 (0.9), 2 (0.7)
    gt = PseudoLabeler('teacher', score_thr=0.5, nms_iou=0.5, max_per_img=2).select(pred)
    torch.testing.assert_close(gt.bboxes, pred.bboxes[[0, 2]])
    torch.testing.assert_close(gt.labels, torch.tensor([0, 1]))
    # no NMS, no cap: the 4 boxes above 0.5 by score
    gt = PseudoLabeler('teacher', score_thr=0.5).select(pred)
    torch.testing.assert_close(gt.labels, torch.tensor([0, 0, 1, 2]))


def test_pseudo_labels_are_the_teachers_detections(ckpt):
    """labels='pseudo': the student trains on the teacher's detections of the batch
    (rescale=False: the batch's own coordinates) above score_thr; the records come
    from the same teacher pass and equal a plain recorded forward's."""
    d = _build(ckpt, PKD, labels='pseudo', pseudo_labels=dict(score_thr=0.5))
    # a random teacher scores about sigmoid(bias); a zero bias puts scores around 0.5
    d.teacher.bbox_head.retina_cls.bias.data.zero_()
    batch = _unlabelled(demo_batch(d))
    ref = copy.deepcopy(batch)
    with torch.no_grad():
        preds = d.teacher.predict(ref['inputs'], ref['data_samples'], rescale=False)
    thr = torch.cat([p.pred_instances.scores for p in preds]).median().item()
    d.labeler.score_thr = thr
    losses = d.loss(batch['inputs'], batch['data_samples'])
    assert 'loss_cls' in losses and 'distill.loss_pkd' in losses
    for sample, pred in zip(batch['data_samples'], preds):
        keep = pred.pred_instances.scores >= thr
        assert keep.any()
        torch.testing.assert_close(sample.gt_instances.bboxes, pred.pred_instances.bboxes[keep])
        torch.testing.assert_close(sample.gt_instances.labels, pred.pred_instances.labels[keep])
        assert 'pred_instances' not in sample
    # the records of the predict pass are those of the plain recorded forward
    d.labeler, copy_batch = None, _unlabelled(demo_batch(d))
    d._teacher_forward(copy_batch['inputs'])
    plain = [t.clone() for t in d.teacher_recorder.get('fpn')]
    d.reset_records()
    d.labeler = PseudoLabeler('teacher', 0.5)
    d._teacher_forward(copy_batch['inputs'], None, copy_batch['data_samples'])
    for a, b in zip(d.teacher_recorder.get('fpn'), plain):
        torch.testing.assert_close(a, b)


def test_no_labels_trains_on_distillation_alone(ckpt):
    d = _build(ckpt, PKD, labels='none')
    batch = _unlabelled(demo_batch(d))
    losses = d.loss(batch['inputs'], batch['data_samples'])
    assert set(losses) == {'distill.loss_pkd'}
    losses['distill.loss_pkd'].backward()
    assert d.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert d.student.bbox_head.retina_cls.weight.grad is None  # no head loss reads it


def test_no_labels_runs_the_heads_a_loss_reads(ckpt):
    d = _build(ckpt, dict(loss_kd=dict(type='LogitKDLoss', channels_per_prior=3)), labels='none')
    batch = _unlabelled(demo_batch(d))
    d.loss(batch['inputs'], batch['data_samples'])['distill.loss_kd'].backward()
    assert d.student.bbox_head.retina_cls.weight.grad.abs().sum() > 0


def test_ground_truth_losses_are_refused_without_labels(ckpt):
    with pytest.raises(ValueError, match=r"\['loss_fgd'\] need it"):
        _build(ckpt, dict(loss_fgd=dict(type='FGDLoss', preset='retinanet'), **PKD), labels='none')
    with pytest.raises(ValueError, match=r"no task loss, but \['loss_calibration'\]"):
        _build(ckpt, PKD, labels='none', loss_calibration=dict(share=1.0))


@pytest.mark.parametrize('kwargs, match', [
    (dict(labels='teacher'), 'labels must be one of'),
    (dict(pseudo_labels=dict(score_thr=0.3)), "only read with labels='pseudo'"),
    (dict(labels='pseudo', pseudo_labels=dict(teacher='big')), 'is not a teacher'),
    (dict(labels='pseudo', pseudo_labels=dict(thr=0.3)), 'unknown keys'),
    (dict(labels='pseudo', pseudo_labels=dict(score_thr=2)), 'score_thr'),
])
def test_bad_label_options(ckpt, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(ckpt, PKD, **kwargs)


def test_unannotated_batch_with_labels_gt_is_a_clear_error(ckpt):
    d = _build(ckpt, PKD)
    batch = _unlabelled(demo_batch(d))
    with pytest.raises(ValueError, match="labels='pseudo'"):
        d.loss(batch['inputs'], batch['data_samples'])
    check_annotated(demo_batch(d)['data_samples'])  # annotated: no error
