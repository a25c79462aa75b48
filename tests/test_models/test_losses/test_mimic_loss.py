"""Mimic: Eqs. 3 and 5 on RoI-pooled features of known maps and boxes (values by hand),
the loss against a per-RoI loop on mmdet's extractor, and one Distiller step on a tiny
Faster R-CNN pair."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmkd_det.models.losses import MimicLoss
from mmkd_det.models.losses.mimic_loss import mimic_l2
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, tiny_loss_distiller, tiny_model_cfg

# one level of stride 1, RoIAlign 2 x 2, one sample per bin at its centre
# x1 - 0.5 + (j + 0.5) * w / 2 (aligned): exact on maps linear in x
ALIGN = dict(type='SingleRoIExtractor',
             roi_layer=dict(type='RoIAlign', output_size=2, sampling_ratio=1, aligned=True),
             out_channels=1, featmap_strides=[1])


def _x_map(scale=1.0):
    return (scale * torch.arange(8.)).view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()


def test_hand_computed_on_known_boxes():
    """Student map f(x, y) = x, teacher 2x, boxes [0, 0, 4, 4] and [2, 0, 6, 2].
    Box 1 samples x = 0.5, 2.5 (two rows): squared differences 0.25 + 6.25, twice -> 13.
    Box 2 samples x = 2.5, 4.5: 6.25 + 20.25, twice -> 53.
    Eq. 3: (13 + 53) / (2 * 2) = 16.5.  Eq. 5 (m = 1 * 2 * 2 = 4): (13 / 4 + 53 / 4) / 4 = 4.125."""
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 4., 4.], [2., 0., 6., 2.]]),
                      labels=torch.tensor([0, 1]))
    for normalize, expected in (('none', 16.5), ('dims', 4.125)):
        loss = MimicLoss(rois='gt', normalize=normalize, roi_extractor=ALIGN, adapter=None,
                         loss_weight=2.0)
        value = loss([_x_map()], [_x_map(2.0)], gt_instances=[gt], student=None, teacher=None)
        assert value.item() == pytest.approx(2.0 * expected)
    # no boxes: zero, still in the graph
    s = _x_map().requires_grad_()
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    value = MimicLoss(rois='gt', roi_extractor=ALIGN, adapter=None)([s], [_x_map(2.0)],
                                                                    gt_instances=[empty],
                                                                    student=None, teacher=None)
    value.backward()
    assert value.item() == 0.0 and s.grad is not None


def test_mimic_l2_equations():
    s = torch.tensor([[[[1., 2.], [3., 4.]]], [[[0., 0.], [0., 0.]]]])
    t = torch.zeros_like(s)
    # ||u - v||^2 = 30 and 0; Eq. 3: 30 / (2 * 2); Eq. 5 with m = 4: 30 / 4 / (2 * 2)
    assert mimic_l2(s, t, 'none').item() == pytest.approx(7.5)
    assert mimic_l2(s, t, 'dims').item() == pytest.approx(1.875)
    with pytest.raises(ValueError, match='normalize'):
        mimic_l2(s, t, 'area')
    with pytest.raises(ValueError, match='adapter'):
        mimic_l2(s, t[:, :, :1], 'none')


def test_options_and_errors():
    with pytest.raises(ValueError, match='rois must be one of'):
        MimicLoss(rois='anchors')
    with pytest.raises(ValueError, match='normalize must be one of'):
        MimicLoss(normalize='area')
    loss = MimicLoss()
    assert (loss.rois, loss.normalize, loss.adapter_cfg) == ('proposals', 'dims', 'auto')
    s = MODELS.build(tiny_model_cfg('faster', 8))
    with pytest.raises(RuntimeError, match='none were captured'):
        loss([torch.zeros(1, 16, 8, 8)] * 4, [torch.zeros(1, 16, 8, 8)] * 4, gt_instances=[],
             student=s, teacher=s)
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 4., 4.]]), labels=torch.tensor([0]))
    with pytest.raises(ValueError, match='levels=\\[0, 1, 2, 3\\]'):
        MimicLoss(rois='gt')([torch.zeros(1, 16, 8, 8)] * 5, [torch.zeros(1, 16, 8, 8)] * 5,
                             gt_instances=[gt], student=s, teacher=s)
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    with pytest.raises(TypeError, match='roi_extractor=dict'):
        MimicLoss(rois='gt')([torch.zeros(1, 16, 8, 8)] * 4, [torch.zeros(1, 16, 8, 8)] * 4,
                             gt_instances=[gt], student=retina, teacher=retina)


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'faster', 'loss_mimic',
                               dict(type='MimicLoss', **loss_cfg), levels=[0, 1, 2, 3])


def _data(model):
    return demo_batch(model, (3, 1))


@pytest.mark.parametrize('rois', ['proposals', 'sampled'])
def test_against_per_roi_loop_on_captured_rois(tmp_path, rois):
    """The loss on the student's captured RoIs equals a loop over RoIs of the
    adapted student and the teacher features pooled by mmdet's own (teacher-width)
    extractor, Eq. 5."""
    distiller = _pair(tmp_path, rois=rois)
    loss = distiller.distill_losses['loss_mimic']
    student, teacher = distiller.student, distiller.teacher
    data = _data(distiller)
    gts = [s.gt_instances for s in data['data_samples']]
    with loss.student_context(student):
        student.loss(data['inputs'], data['data_samples'])
    record = loss._capture.record
    r = record.rois if rois == 'sampled' else torch.cat(
        [torch.cat([p.new_full((len(p), 1), i), p], 1) for i, p in enumerate(record.proposals)])
    s_feats = list(record.feats[:4])
    with torch.no_grad():
        t_feats = list(teacher.extract_feat(data['inputs'])[:4])
    value = loss(s_feats, t_feats, gt_instances=gts, student=student, teacher=teacher)

    ext = teacher.roi_head.bbox_roi_extractor  # 32 channels = adapted student width
    adapted = loss.adapters['s_feats'](s_feats)
    s_rois, t_rois = ext(adapted, r), ext(t_feats, r)
    total = 0.0
    for i in range(r.shape[0]):
        total += ((s_rois[i] - t_rois[i])**2).sum() / s_rois[i].numel()
    assert r.shape[0] > 10
    assert value.item() == pytest.approx((total / (2 * r.shape[0])).item(), rel=1e-5)


def test_distiller_step_backpropagates_into_student_and_adapters(tmp_path):
    distiller = _pair(tmp_path)
    assert len(distiller.distill_losses['loss_mimic'].adapters['s_feats'].convs) == 4
    data = _data(distiller)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    value = losses['distill.loss_mimic']
    assert torch.isfinite(value) and value > 0
    value.backward()
    assert distiller.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in distiller.distill_losses.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())
    # the student's R-CNN head is not on the mimic path
    assert distiller.student.roi_head.bbox_head.fc_cls.weight.grad is None


def test_gt_rois_need_no_capture(tmp_path):
    distiller = _pair(tmp_path, rois='gt', normalize='none')
    data = _data(distiller)
    value = distiller.loss(data['inputs'], data['data_samples'])['distill.loss_mimic']
    assert torch.isfinite(value) and value > 0
    assert 'loss' not in vars(distiller.student.roi_head)
