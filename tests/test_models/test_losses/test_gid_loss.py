"""GID: the feature, relation and response equations on hand-made tensors, the relation
term against a double loop, the response mask against mmdet's own MaxIoUAssigner, the
feature term against mmdet's RoI extractor per GI, options and errors, and Distiller
steps on tiny Faster R-CNN and RetinaNet pairs."""
import math

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.structures import InstanceData

from mmkd_det.models.losses import GIDLoss
from mmkd_det.models.losses.gid_loss import (gid_feature_loss, gid_relation_loss, gid_response_loss,
                                             normalized_distances)
from mmkd_det.registry import MODELS
from tests.conftest import save_weights, tiny_model_cfg

RETINA_EXT = dict(type='SingleRoIExtractor',
                  roi_layer=dict(type='RoIAlign', output_size=4, sampling_ratio=2, aligned=True),
                  out_channels=32, featmap_strides=[8, 16, 32, 64, 128], finest_scale=112)


def test_feature_loss_by_hand():
    # GI 0: student ones, GI 1: zeros; teacher zeros: sum of squares 1 * 2 * 2 = 4
    s = torch.stack([torch.ones(1, 2, 2), torch.zeros(1, 2, 2)])
    t = torch.zeros_like(s)
    assert gid_feature_loss(s, t, 'positions').item() == pytest.approx(4 / (2 * 4))
    assert gid_feature_loss(s, t, 'instances').item() == pytest.approx(4 / 2)
    assert gid_feature_loss(s[:0], t[:0]).item() == 0.0
    with pytest.raises(ValueError, match='feature_normalize'):
        gid_feature_loss(s, t, 'pixels')
    with pytest.raises(ValueError, match='adapter'):
        gid_feature_loss(s, t[:, :, :1])


def test_relation_loss_by_hand():
    """Teacher points 0, 1, 3: distances 1, 3, 2, mean 2 -> psi 0.5, 1.5, 1.
    Student points 0, 2, 4: distances 2, 4, 2, mean 8/3 -> psi 0.75, 1.5, 0.75.
    Differences 0.25, 0, 0.25 -> smooth L1 (delta 1) 0.03125, 0, 0.03125, each pair twice:
    0.125 over n (n - 1) = 6 pairs."""
    t = torch.tensor([[0.], [1.], [3.]])
    s = torch.tensor([[0.], [2.], [4.]])
    psi, off = normalized_distances(t)
    torch.testing.assert_close(psi, torch.tensor([[0., .5, 1.5], [.5, 0., 1.], [1.5, 1., 0.]]))
    assert off.sum().item() == 6
    assert gid_relation_loss(s, t).item() == pytest.approx(0.125 / 6)
    assert gid_relation_loss(s, t, counts=[3]).item() == pytest.approx(0.125 / 6)
    # per image: two GIs always have psi = 1 on both sides; a single GI has no pair
    assert gid_relation_loss(s, t, counts=[2, 1]).item() == pytest.approx(0.0)
    assert gid_relation_loss(s[:1], t[:1]).item() == 0.0
    # delta 0.1: |0.25| >= 0.1 -> 0.25 - 0.05 = 0.2, four times: 0.8 / 6
    assert gid_relation_loss(s, t, beta=0.1).item() == pytest.approx(0.8 / 6)


def test_relation_loss_against_double_loop():
    torch.manual_seed(0)
    s, t = torch.randn(7, 3, 2, 2), torch.randn(7, 5, 2, 2)

    def psi(x):
        n = x.shape[0]
        d = [[torch.dist(x[i].flatten(), x[j].flatten()).item() for j in range(n)]
             for i in range(n)]
        mean = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return [[v / mean for v in row] for row in d]

    def loop(a, b):
        n = a.shape[0]
        pa, pb = psi(a), psi(b)
        total = 0.0
        for i in range(n):
            for j in range(n):
                if i != j:
                    x = abs(pa[i][j] - pb[i][j])
                    total += 0.5 * x * x if x < 1 else x - 0.5
        return total / (n * (n - 1))

    assert gid_relation_loss(s, t).item() == pytest.approx(loop(s, t), rel=1e-5)
    per_image = (loop(s[:4], t[:4]) + loop(s[4:], t[4:])) / 2
    assert gid_relation_loss(s, t, counts=[4, 3]).item() == pytest.approx(per_image, rel=1e-5)


def test_response_loss_by_hand():
    # prior 0 in the mask: BCE(logit 0, target sigmoid(0) = 0.5) = log 2; |1 - 0| = 1
    # prior 1 outside the mask (any values)
    s_cls = torch.tensor([[[0.], [0.]]], requires_grad=True)
    t_cls = torch.tensor([[[0.], [10.]]])
    s_reg = torch.tensor([[[1., 0., 0., 0.], [5., 5., 5., 5.]]], requires_grad=True)
    t_reg = torch.zeros(1, 2, 4)
    mask = torch.tensor([[True, False]])
    value = gid_response_loss(s_cls, t_cls, s_reg, t_reg, mask, 0.1, 1.0)
    assert value.item() == pytest.approx(0.1 * math.log(2) + 1.0)
    value.backward()
    assert s_reg.grad[0, 1].abs().sum() == 0 and s_reg.grad[0, 0, 0] == 1.0
    empty = gid_response_loss(s_cls, t_cls, s_reg, t_reg, torch.zeros_like(mask), 0.1, 1.0)
    assert empty.item() == 0.0


def test_options_and_errors():
    for kwargs, match in ((dict(head='roi_head'), 'head must be one of'),
                          (dict(gi_score='kl'), 'gi_score must be one of'),
                          (dict(feature_normalize='x'), 'feature_normalize must be'),
                          (dict(relation_scope='x'), 'relation_scope must be'),
                          (dict(topk=0), 'topk'),
                          (dict(response_iou_thrs=(0.5, )), 'response_iou_thrs'),
                          (dict(feature_weight=0, relation_weight=0, response_cls_weight=0,
                                response_reg_weight=0), 'every term weight is 0')):
        with pytest.raises(ValueError, match=match):
            GIDLoss(**kwargs)
    loss = GIDLoss()
    assert (loss.gi_score, loss.nms_iou, loss.topk, loss.pre_nms_topk, loss.min_size) == \
        ('max_abs_diff', 0.3, 10, 3000, 10.0)
    assert loss.adapter_cfg == dict(kernel_size=1) and loss.relation_adapted
    # no feature term and a relation on the student's own features: no adapter to build
    assert GIDLoss(feature_weight=0).feature_pairs
    assert not GIDLoss(feature_weight=0, relation_adapted=False).feature_pairs
    assert not GIDLoss(feature_weight=0, relation_weight=0).feature_pairs
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    faster = MODELS.build(tiny_model_cfg('faster', 8))
    assert loss.dense_head(faster) is faster.rpn_head
    assert loss.dense_head(retina) is retina.bbox_head
    with pytest.raises(TypeError, match='no dense rpn_head'):
        GIDLoss(head='rpn_head').dense_head(retina)
    with pytest.raises(TypeError, match='roi_extractor=dict'):
        loss.extractor(retina, 'student')


def _pair(tmp_path, kind, **loss_cfg):
    ckpt = save_weights(tiny_model_cfg(kind, 16), str(tmp_path / 't.pth'), seed=1)
    head = 'rpn_head' if kind == 'faster' else 'bbox_head'
    fpn = dict(source='neck', levels=[0, 1, 2, 3]) if kind == 'faster' else dict(source='neck')
    if kind == 'retina':
        loss_cfg.setdefault('roi_extractor', RETINA_EXT)
    loss_cfg.setdefault('min_size', 2)
    return MODELS.build(
        dict(type='Distiller', student=tiny_model_cfg(kind, 8), teacher=tiny_model_cfg(kind, 16),
             teacher_ckpt=ckpt, probe_size=64,
             recorders=dict(fpn=fpn, cls=dict(source=head, index=0),
                            reg=dict(source=head, index=1)),
             distill_losses=dict(loss_gid=dict(type='GIDLoss', **loss_cfg))))


def _data(model):
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 1],
                          num_classes=3)
    return model.student.data_preprocessor(data, True)


@pytest.mark.parametrize('kind', ['faster', 'retina'])
def test_distiller_step(tmp_path, kind):
    """Finite terms, each logged; gradients reach the student and the adapters, not the
    teacher."""
    distiller = _pair(tmp_path, kind)
    assert len(distiller.distill_losses['loss_gid'].adapters['s_feats'].convs) == \
        (4 if kind == 'faster' else 5)
    data = _data(distiller)
    losses = distiller.loss(data['inputs'], data['data_samples'])
    keys = [f'distill.loss_gid.loss_{t}' for t in ('feature', 'relation', 'response')]
    assert all(k in losses and torch.isfinite(losses[k]) and losses[k] > 0 for k in keys)
    sum(losses[k] for k in keys).backward()
    head = distiller.student.rpn_head if kind == 'faster' else distiller.student.bbox_head
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in distiller.student.neck.parameters())
    assert all(p.grad is not None for p in distiller.distill_losses.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())


def _records(distiller, data):
    distiller.record_step(data['inputs'], data['data_samples'])
    name = 'loss_gid'
    return distiller._loss_kwargs(name, data['data_samples'])


@pytest.mark.parametrize('kind', ['faster', 'retina'])
def test_mask_and_feature_against_mmdet(tmp_path, kind):
    """The response mask equals mmdet's MaxIoUAssigner (the head's own train_cfg) run per
    image with the GIs as ground truth; the feature term equals a loop over GIs of mmdet's
    SingleRoIExtractor on the adapted student and the teacher."""
    from mmdet.registry import TASK_UTILS
    distiller = _pair(tmp_path, kind, relation_weight=0, response_cls_weight=0,
                      response_reg_weight=0, topk=4)
    loss = distiller.distill_losses['loss_gid']
    data = _data(distiller)
    kw = _records(distiller, data)
    gis, priors = loss.select(kw['s_cls'], kw['t_cls'], kw['s_reg'], kw['t_reg'],
                              distiller.student, distiller.teacher, kw['batch_img_metas'])
    assert gis.rois.shape[0] > 2
    head = loss.dense_head(distiller.student)
    mask = loss.response_mask(head, priors, gis, [c.shape[-2:] for c in kw['s_cls']],
                              kw['batch_img_metas'])
    assigner = TASK_UTILS.build(head.train_cfg['assigner'])
    for b in range(2):
        gt = InstanceData(bboxes=gis.boxes[b][gis.valid[b]],
                          labels=torch.zeros(int(gis.valid[b].sum()), dtype=torch.long))
        res = assigner.assign(InstanceData(priors=priors), gt)
        assert torch.equal(mask[b], res.gt_inds > 0)
    assert mask.any()

    from mmkd_det.models.utils.roi_records import build_roi_extractor
    value = loss(**kw)['loss_feature']
    if kind == 'faster':
        ext = distiller.teacher.roi_head.bbox_roi_extractor
    else:
        ext = build_roi_extractor(dict(RETINA_EXT, out_channels=32))
    s_feats = loss.adapters['s_feats'](list(kw['s_feats']))
    total = 0.0
    for i in range(gis.rois.shape[0]):
        r = gis.rois[i:i + 1]
        total += (ext(s_feats, r) - ext(list(kw['t_feats']), r)).pow(2).sum()
    size = ext.roi_layers[0].output_size
    expected = loss.feature_weight * total / (gis.rois.shape[0] * size[0] * size[1])
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_single_terms_and_assigner_error(tmp_path):
    distiller = _pair(tmp_path, 'retina', feature_weight=0, relation_weight=0,
                      response_reg_weight=0, loss_weight=2.0)
    loss = distiller.distill_losses['loss_gid']
    data = _data(distiller)
    kw = _records(distiller, data)
    out = loss(**kw)
    assert list(out) == ['loss_response']
    # the fixed thresholds of the head's assigner give the same value
    loss.response_iou_thrs = (0.5, 0.0)
    assert loss(**kw)['loss_response'].item() == pytest.approx(out['loss_response'].item())
    loss.response_iou_thrs = None
    head = loss.dense_head(distiller.student)
    saved = head.train_cfg['assigner']
    head.train_cfg['assigner'] = dict(type='ATSSAssigner', topk=9)
    with pytest.raises(ValueError, match='response_iou_thrs'):
        loss(**kw)
    head.train_cfg['assigner'] = saved
    loss.feature_weight = 1.0
    kw['s_feats'], kw['t_feats'] = kw['s_feats'][:4], kw['t_feats'][:4]
    with pytest.raises(ValueError, match='levels='):
        loss(**kw)


def test_relation_on_own_or_adapted_features(tmp_path):
    """relation_adapted=False pools the student's own maps, True the adapted ones; both equal
    gid_relation_loss on features pooled by mmdet's extractor."""
    from mmkd_det.models.utils.roi_records import build_roi_extractor
    distiller = _pair(tmp_path, 'retina', feature_weight=0, response_cls_weight=0,
                      response_reg_weight=0, topk=5)
    loss = distiller.distill_losses['loss_gid']
    kw = _records(distiller, _data(distiller))
    gis, _ = loss.select(kw['s_cls'], kw['t_cls'], kw['s_reg'], kw['t_reg'], distiller.student,
                         distiller.teacher, kw['batch_img_metas'])
    ext = build_roi_extractor(RETINA_EXT)
    t_rois = ext(list(kw['t_feats']), gis.rois)
    adapted = ext(loss.adapters['s_feats'](list(kw['s_feats'])), gis.rois)
    own = build_roi_extractor(dict(RETINA_EXT, out_channels=16))(list(kw['s_feats']), gis.rois)
    for flag, s_rois in ((True, adapted), (False, own)):
        loss.relation_adapted = flag
        for scope, counts in (('batch', None), ('image', gis.valid.sum(1).tolist())):
            loss.relation_scope = scope
            expected = 40.0 * gid_relation_loss(s_rois, t_rois, 1.0, counts)
            assert loss(**kw)['loss_relation'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_general_instance_gives_zero_terms_in_the_graph(tmp_path):
    """Every GI filtered out (min_size above the image): all three terms are 0, finite, and
    backward still runs through the student's records and the adapters."""
    distiller = _pair(tmp_path, 'faster', min_size=1000)
    loss = distiller.distill_losses['loss_gid']
    kw = _records(distiller, _data(distiller))
    out = loss(**kw)
    assert set(out) == {'loss_feature', 'loss_relation', 'loss_response'}
    assert all(v.item() == 0.0 for v in out.values())
    sum(out.values()).backward()
    assert all(p.grad is not None for p in loss.parameters())


def test_runs_under_bf16_autocast(tmp_path):
    """Under autocast the records are bf16; the loss works in fp32 (mmcv's NMS refuses bf16
    boxes) and returns float32 terms."""
    distiller = _pair(tmp_path, 'retina')
    data = _data(distiller)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = distiller.loss(data['inputs'], data['data_samples'])
    for term in ('feature', 'relation', 'response'):
        value = losses[f'distill.loss_gid.loss_{term}']
        assert value.dtype == torch.float32 and torch.isfinite(value)
