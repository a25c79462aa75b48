"""ODGK: the RDM weight and the global loss by hand, the loss on RoI features of known
boxes against a per-instance loop (mmdet's RoI extractor, prototypes read back from the
PGM and checked to be bank instances of their class), options and errors, and
Distiller steps on a tiny Faster R-CNN pair."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmkd_det.models.losses import ODGKLoss
from mmkd_det.models.losses.odgk_loss import global_knowledge_loss, robustness
from mmkd_det.models.utils.roi_records import build_roi_extractor
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, tiny_loss_distiller, tiny_model_cfg

ALIGN = dict(type='SingleRoIExtractor',
             roi_layer=dict(type='RoIAlign', output_size=2, sampling_ratio=1, aligned=True),
             out_channels=1, featmap_strides=[1])


def test_robustness_and_global_loss_by_hand():
    """Prototype classes [0, 1], instance labels [0, 1].
    Own-class maxima: student 0.8, 0.9; teacher 0.6, 0.1 -> w = 1 - 0.2, 1 - 0.8 = 0.8, 0.2.
    Weighted differences: 0.8 * 0.2 = 0.16 (i=0, k=0), 0.2 * 0.8 = 0.16 (i=1, k=1), else 0;
    smooth L1: 0.5 * 0.16^2 = 0.0128 twice; mean over 2 x 2 = 0.0064."""
    g_s = torch.tensor([[0.8, 0.2], [0.5, 0.9]])
    g_t = torch.tensor([[0.6, 0.2], [0.5, 0.1]])
    own = torch.tensor([[True, False], [False, True]])
    w = robustness(g_s, g_t, own)
    assert torch.allclose(w, torch.tensor([0.8, 0.2]))
    ones = torch.ones(2, dtype=torch.bool)
    assert global_knowledge_loss(g_s, g_t, w, ones, ones).item() == pytest.approx(0.0064)
    # a class without prototype: weight 1; an instance or prototype left out of the mean
    assert robustness(g_s, g_t, torch.zeros(2, 2, dtype=torch.bool)).tolist() == [1., 1.]
    value = global_knowledge_loss(g_s, g_t, w, torch.tensor([True, False]), ones)
    assert value.item() == pytest.approx(0.0128 / 2)
    value = global_knowledge_loss(g_s, g_t, w, ones, torch.tensor([False, True]))
    assert value.item() == pytest.approx(0.0128 / 2)
    # |diff| > 1: the linear branch of smooth L1 (|x| - 0.5)
    value = global_knowledge_loss(torch.tensor([[2.0]]), torch.tensor([[-1.0]]),
                                  torch.ones(1), ones[:1], ones[:1])
    assert value.item() == pytest.approx(2.5)


def _gts():
    boxes = [torch.tensor([[0., 0., 4., 4.], [2., 1., 7., 6.], [1., 3., 5., 8.]]),
             torch.tensor([[3., 0., 8., 5.], [0., 2., 6., 6.]])]
    labels = [torch.tensor([0, 1, 0]), torch.tensor([1, 0])]
    return [InstanceData(bboxes=b, labels=lab) for b, lab in zip(boxes, labels)]


def test_against_per_instance_loop():
    torch.manual_seed(0)
    gts = _gts()
    loss = ODGKLoss(roi_extractor=ALIGN, adapter=None, num_classes=2, update_interval=1,
                    min_size=0, bank_size=4, num_prototypes=2, loss_weight=3.0)
    ext = build_roi_extractor(ALIGN)
    first = ([torch.randn(2, 3, 8, 8)], [torch.randn(2, 4, 8, 8)])
    value = loss(*first, gt_instances=gts, student=None, teacher=None)
    assert value.item() == 0.0  # no prototypes before the first PGM
    p_s, p_t, p_ok, p_cls = loss.prototypes
    assert p_ok.all() and p_cls.tolist() == [0, 0, 1, 1]
    # every prototype is a pooled instance of its class, the same one in both spaces
    rois = torch.cat([torch.cat([torch.full((len(g.bboxes), 1), float(i)), g.bboxes], 1)
                      for i, g in enumerate(gts)])
    labels = torch.cat([g.labels for g in gts])
    s0, t0 = ext(first[0], rois).mean((2, 3)), ext(first[1], rois).mean((2, 3))
    for k in range(4):
        match = [i for i in range(5) if labels[i] == p_cls[k]
                 and torch.allclose(s0[i], p_s[k], atol=1e-6)
                 and torch.allclose(t0[i], p_t[k], atol=1e-6)]
        assert match, k

    s_map = torch.randn(2, 3, 8, 8, requires_grad=True)
    t_map = torch.randn(2, 4, 8, 8)
    value = loss([s_map], [t_map], gt_instances=gts, student=None, teacher=None)
    s1, t1 = ext([s_map], rois).mean((2, 3)), ext([t_map], rois).mean((2, 3))
    total = 0.0
    for i in range(5):
        gs = [F.cosine_similarity(s1[i], p_s[k], dim=0) for k in range(4)]
        gt = [F.cosine_similarity(t1[i], p_t[k], dim=0) for k in range(4)]
        own = [k for k in range(4) if p_cls[k] == labels[i]]
        w = 1 - abs(max(gs[k] for k in own) - max(gt[k] for k in own))
        for k in range(4):
            d = abs(w * (gs[k] - gt[k]))
            total += 0.5 * d**2 if d < 1 else d - 0.5
    assert value.item() == pytest.approx(3.0 * total.item() / 20, rel=1e-5)
    value.backward()
    assert s_map.grad.abs().sum() > 0

    # robust=False: weight 1
    plain = ODGKLoss(roi_extractor=ALIGN, adapter=None, robust=False)
    plain.prototypes = (p_s, p_t, p_ok, p_cls)  # those of the loop (loss has re-selected)
    plain.eval()  # no bank update
    ref = sum(
        F.smooth_l1_loss(F.cosine_similarity(s1[i:i + 1], p_s, dim=1),
                         F.cosine_similarity(t1[i:i + 1], p_t, dim=1), reduction='sum')
        for i in range(5)) / 20
    got = plain([s_map], [t_map], gt_instances=gts, student=None, teacher=None)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert plain.bank is None


def test_min_size_and_update_interval():
    gts = _gts()  # widths/heights: 4x4, 5x5, 4x5, 5x5, 6x4
    loss = ODGKLoss(roi_extractor=ALIGN, adapter=None, num_classes=2, update_interval=2,
                    min_size=4.5, bank_size=4)
    feats = ([torch.randn(2, 3, 8, 8)], [torch.randn(2, 3, 8, 8)])
    loss(*feats, gt_instances=gts, student=None, teacher=None)
    # only the 5x5 boxes (one per class) are larger than 4.5 in both sides
    assert loss.bank.valid[:, :4].sum(1).tolist() == [0, 2]
    assert loss.prototypes is not None  # step 0 selects
    before = loss.prototypes
    loss(*feats, gt_instances=gts, student=None, teacher=None)
    assert loss.prototypes is before  # step 1: no selection (interval 2)
    loss(*feats, gt_instances=gts, student=None, teacher=None)
    assert loss.prototypes is not before
    # class 0 has no instance in the bank: its prototypes are invalid
    assert loss.prototypes[2].tolist()[:10] == [False] * 10


def test_options_and_errors():
    with pytest.raises(ValueError, match='rois must be one of'):
        ODGKLoss(rois='proposals')
    with pytest.raises(ValueError, match='>= 1'):
        ODGKLoss(num_prototypes=0)
    with pytest.raises(ValueError, match='density_quantile'):
        ODGKLoss(density_quantile=1.0)
    with pytest.raises(ValueError, match='local_weight'):
        ODGKLoss(local_weight=-1.0)
    loss = ODGKLoss()
    assert (loss.rois, loss.num_prototypes, loss.alpha, loss.feature_pairs) == ('gt', 10, 10.0, ())
    assert ODGKLoss(local_weight=1.0).feature_pairs == (('s_feats', 't_feats'), )
    s = MODELS.build(tiny_model_cfg('faster', 8))
    gt = InstanceData(bboxes=torch.tensor([[0., 0., 4., 4.]]), labels=torch.tensor([0]))
    with pytest.raises(ValueError, match='levels=\\[0, 1, 2, 3\\]'):
        loss([torch.zeros(1, 16, 8, 8)] * 5, [torch.zeros(1, 16, 8, 8)] * 5, gt_instances=[gt],
             student=s, teacher=s)
    with pytest.raises(RuntimeError, match='none were captured'):
        ODGKLoss(rois='sampled')([torch.zeros(1, 16, 8, 8)] * 4, [torch.zeros(1, 16, 8, 8)] * 4,
                                 gt_instances=[gt], student=s, teacher=s)
    with pytest.raises(ValueError, match='num_classes'):
        ODGKLoss(roi_extractor=ALIGN, adapter=None)([torch.zeros(1, 2, 8, 8)],
                                                    [torch.zeros(1, 2, 8, 8)], gt_instances=[gt],
                                                    student=None, teacher=None)


def _pair(tmp_path, **loss_cfg):
    return tiny_loss_distiller(tmp_path, 'faster', 'loss_odgk',
                               dict(type='ODGKLoss', **loss_cfg), levels=[0, 1, 2, 3])


def _data(model):
    return demo_batch(model, (3, 2))


@pytest.mark.parametrize('rois', ['gt', 'sampled'])
def test_distiller_steps_backpropagate_into_student_and_adapters(tmp_path, rois):
    distiller = _pair(tmp_path, rois=rois, min_size=0, update_interval=1, local_weight=1.0)
    loss = distiller.distill_losses['loss_odgk']
    assert len(loss.adapters['s_feats'].convs) == 4
    data = _data(distiller)
    first = distiller.loss(data['inputs'], data['data_samples'])
    assert first['distill.loss_odgk.global'].item() == 0.0  # prototypes come after step 0
    assert loss.prototypes is not None and loss.prototypes[2].any()
    losses = distiller.loss(data['inputs'], data['data_samples'])
    glob, local = losses['distill.loss_odgk.global'], losses['distill.loss_odgk.local']
    assert torch.isfinite(glob) and glob > 0 and torch.isfinite(local) and local > 0
    (glob + local).backward()
    assert distiller.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in distiller.distill_losses.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())
    # the bank holds widths 32 (teacher) and 16 (student), 3 classes
    assert tuple(loss.bank.feats_a.shape[::2]) == (3, 32)
    assert tuple(loss.bank.feats_b.shape[::2]) == (3, 16)
    # the Distiller's checkpoint carries the PGM state (resume keeps the prototypes)
    state = distiller.state_dict()['distill_losses.loss_odgk._extra_state']
    assert state['steps'] == 2 and torch.equal(state['bank']['feats_a'], loss.bank.feats_a)


def test_bank_and_prototypes_survive_a_checkpoint(tmp_path):
    """Resume keeps the PGM state: a loss restored from a (weights-only) checkpoint of
    a trained one gives the same next loss and selects the same prototypes."""
    gts = _gts()
    kwargs = dict(roi_extractor=ALIGN, adapter=None, num_classes=2, update_interval=2,
                  min_size=0, bank_size=4)
    torch.manual_seed(0)
    steps = [([torch.randn(2, 3, 8, 8)], [torch.randn(2, 3, 8, 8)]) for _ in range(4)]
    trained = ODGKLoss(**kwargs)
    for feats in steps[:3]:
        trained(*feats, gt_instances=gts, student=None, teacher=None)
    path = tmp_path / 'odgk.pth'
    torch.save(trained.state_dict(), path)
    restored = ODGKLoss(**kwargs)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored._steps == trained._steps == 3
    for name in ('feats_a', 'feats_b', 'valid', 'ptr'):
        assert torch.equal(getattr(restored.bank, name), getattr(trained.bank, name))
    # step 3 uses the prototypes of step 2 and then (interval 2) keeps them
    want = trained(*steps[3], gt_instances=gts, student=None, teacher=None)
    got = restored(*steps[3], gt_instances=gts, student=None, teacher=None)
    assert want.item() > 0 and got.item() == want.item()
    assert all(torch.equal(a, b) for a, b in zip(restored.prototypes, trained.prototypes))
    # a fresh loss (no checkpoint) gives a global term of 0 at its first step instead
    fresh = ODGKLoss(**kwargs)
    assert fresh(*steps[3], gt_instances=gts, student=None, teacher=None).item() == 0.0
