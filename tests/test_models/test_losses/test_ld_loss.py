"""LDLoss against MMDetection's own LDHead (an independent implementation of LD)."""
import copy

import pytest
import torch
from mmdet.testing import demo_mm_inputs

from mmkd_det.models.losses import LDLoss
from mmkd_det.registry import MODELS
from tests.conftest import tiny_model_cfg


def _models_and_batch(seed=0):
    torch.manual_seed(seed)
    student = MODELS.build(tiny_model_cfg('gfl', 8))
    teacher = MODELS.build(tiny_model_cfg('gfl', 16))
    student.init_weights()
    teacher.init_weights()
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[3, 1],
                          num_classes=3)
    data = student.data_preprocessor(data, True)
    return student, teacher, data


@pytest.mark.parametrize('temperature', [10.0, 2.0])
def test_ld_equals_mmdet_ld_head(temperature):
    student, teacher, data = _models_and_batch()
    inputs, samples = data['inputs'], data['data_samples']
    gts = [s.gt_instances for s in samples]
    metas = [s.metainfo for s in samples]
    feats = student.extract_feat(inputs)
    s_cls, s_reg = student.bbox_head(feats)
    with torch.no_grad():
        t_cls, t_reg = teacher.bbox_head(teacher.extract_feat(inputs))
    ours = LDLoss(temperature=temperature, loss_weight=0.25)(
        s_cls, s_reg, t_reg, gt_instances=gts, batch_img_metas=metas, student=student)

    cfg = copy.deepcopy(tiny_model_cfg('gfl', 8)).bbox_head
    cfg.update(type='LDHead', train_cfg=student.train_cfg, test_cfg=student.test_cfg,
               loss_ld=dict(type='KnowledgeDistillationKLDivLoss', loss_weight=0.25,
                            T=temperature))
    ld_head = MODELS.build(cfg)
    ld_head.load_state_dict(student.bbox_head.state_dict())
    ref = ld_head.loss(feats, (t_cls, t_reg), samples)['loss_ld']
    ref = torch.stack(ref).sum() if isinstance(ref, (list, tuple)) else ref
    assert ref.item() > 0
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.backward()
    assert student.bbox_head.gfl_reg.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_ld_without_gt_is_zero_and_non_gfl_head_is_an_error():
    student, teacher, data = _models_and_batch(1)
    inputs, samples = data['inputs'], data['data_samples']
    for s in samples:
        s.gt_instances = s.gt_instances[:0]
    feats = student.extract_feat(inputs)
    s_cls, s_reg = student.bbox_head(feats)
    t_reg = [r.detach() + 1 for r in s_reg]
    value = LDLoss()(s_cls, s_reg, t_reg, gt_instances=[s.gt_instances for s in samples],
                     batch_img_metas=[s.metainfo for s in samples], student=student)
    assert value.item() == 0.0
    retina = MODELS.build(tiny_model_cfg('retina', 8))
    with pytest.raises(TypeError, match='GFL-style head'):
        LDLoss()(s_cls, s_reg, t_reg, gt_instances=[], batch_img_metas=[], student=retina)


def test_distiller_reuses_the_task_loss_assignment(tmp_path, monkeypatch):
    """In a Distiller step LD takes the labels of the student's own task-loss
    ``get_targets`` (one ATSS assignment per step); the value equals LD with its
    own second assignment, and the head's method is restored afterwards."""
    import contextlib

    from mmdet.models.dense_heads import GFLHead

    from tests.conftest import frs_distiller_cfg, save_weights
    ckpt = save_weights(tiny_model_cfg('gfl', 16), str(tmp_path / 't.pth'))
    cfg = frs_distiller_cfg('gfl', ckpt, recorders=dict(
        cls=dict(source='bbox_head', index=0), reg=dict(source='bbox_head', index=1)),
        distill_losses=dict(loss_ld=dict(type='LDLoss')))
    distiller = MODELS.build(cfg)
    _, _, data = _models_and_batch()
    calls = []
    original = GFLHead.get_targets

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(GFLHead, 'get_targets', counted)
    shared = distiller.loss(data['inputs'], data['data_samples'])['distill.loss_ld']
    assert len(calls) == 1 and 'get_targets' not in vars(distiller.student.bbox_head)
    ld = distiller.distill_losses['loss_ld']
    monkeypatch.setattr(ld, 'student_context', lambda student: contextlib.nullcontext(),
                        raising=False)
    again = distiller.loss(data['inputs'], data['data_samples'])['distill.loss_ld']
    assert len(calls) == 3                       # task loss + LD's own
    assert shared.item() > 0
    torch.testing.assert_close(shared, again, rtol=1e-6, atol=0)
