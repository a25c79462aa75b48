"""Distillation losses under autocast (bf16 on CPU, as ``--amp`` gives fp16 on GPU)."""
import copy

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.optim import OptimWrapper

from mmkd_det.models.losses import FRSHeadLoss, LogitKDLoss
from mmkd_det.models.losses.base_distill_loss import autocast_disabled, to_float32
from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, save_weights, tiny_model_cfg

# bf16 keeps 8 significant bits: each conv output of both detectors is rounded by
# up to 2^-9 (0.2 %) relative, so the records, and with them every loss, move by
# that order. Measured on this batch: at most 1.1 % (TID, whose top-k and IoU
# selections can flip with the rounding), the others 0.005-0.25 %; 2e-2 leaves a
# margin of about two. Computing the losses in bf16 instead puts softmax KD at T=4
# off by 24 %, returns FRSFeatureLoss and KD as bf16 and stops TID (mmcv's nms
# refuses bf16 boxes).
RTOL = 2e-2

LOSSES = dict(
    loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
    loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02),
    loss_tid=dict(type='TIDLoss', loss_weight=0.005),
    loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto'),
    loss_cwd=dict(type='CWDLoss', tau=4.0, loss_weight=10.0),
    loss_mgd=dict(type='MGDLoss'),
    loss_kd=dict(type='LogitKDLoss', temperature=4.0, mode='softmax', channels_per_prior=3),
    loss_kd_sigmoid=dict(type='LogitKDLoss', temperature=2.0),
    loss_skd=dict(
        type='SKDLoss', preset='paper_one_stage', nonlocal_cfg=dict(sub_sample=1, reduction=2)),
)


def _teacher_ckpt(path: str) -> str:
    """A tiny RetinaNet teacher whose class biases differ from the prior by N(0, 1):
    otherwise both detectors give all-equal logits and the KD terms are ~0."""
    save_weights(tiny_model_cfg('retina', 16), path)
    ckpt = torch.load(path, weights_only=False)
    bias = ckpt['state_dict']['bbox_head.retina_cls.bias']
    bias += torch.randn(bias.shape, generator=torch.Generator().manual_seed(0))
    torch.save(ckpt, path)
    return path


def _train_step(cfg: dict, state: dict, data: dict, autocast: bool) -> dict:
    """One SGD step of a Distiller built from ``cfg`` with weights ``state``;
    returns the logged values and the model."""
    model = MODELS.build(copy.deepcopy(cfg))
    model.load_state_dict(state)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    torch.manual_seed(1)  # MGD's random masks alike in both runs
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        log_vars = model.train_step(copy.deepcopy(data), optim)
    return log_vars, model


def test_distiller_step_under_bf16_autocast_matches_fp32(tmp_path):
    """FRS, TID, PKD, CWD, MGD, KD (softmax T=4, sigmoid T=2) and SKD in one
    Distiller: a training step under CPU bf16 autocast gives every distillation
    term as a finite float32 within RTOL of the fp32 step, and finite weights."""
    cfg = frs_distiller_cfg(
        'retina',
        _teacher_ckpt(str(tmp_path / 'teacher.pth')),
        recorders=dict(
            fpn=dict(source='neck'),
            cls=dict(source='bbox_head', index=0),
            reg=dict(source='bbox_head', index=1)),
        distill_losses=LOSSES)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(0)
    # 128 px: P7 is 2 x 2. (On a 1 x 1 P7 map, torch 2.13's CPU bf16 conv2d weight
    # gradient of the stride-2 padded FPN conv is non-finite in about 1 call in 10,
    # with or without distillation: a PyTorch fault, not one of these losses.)
    data = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 128, 128)] * 2, num_items=[2, 1], num_classes=3)

    full, _ = _train_step(cfg, state, data, autocast=False)
    half, stepped = _train_step(cfg, state, data, autocast=True)
    terms = sorted(k for k in full if k.startswith('distill.'))
    assert len(terms) == 11  # SKD logs three terms
    for key in terms:
        value = half[key]
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value), key
        assert value.item() == pytest.approx(full[key].item(), rel=RTOL), key
        assert full[key].item() > 1e-3, key  # a comparison of non-trivial values
    assert [n for n, p in stepped.named_parameters() if not torch.isfinite(p).all()] == []


def test_a_loss_call_computes_in_fp32_and_returns_grads_in_the_records_dtype():
    """Called under autocast with bf16 logits, a loss gives the fp32 value of the
    same (bf16-representable) inputs, and the gradient reaches the bf16 input in
    bf16. Softmax KD with T=4 in bf16 is off by far more than fp32 rounding."""
    torch.manual_seed(0)
    s = (torch.randn(2, 6, 4, 4) * 3).bfloat16().requires_grad_()
    t = (torch.randn(2, 6, 4, 4) * 3).bfloat16()
    kd = LogitKDLoss(temperature=4.0, mode='softmax', channels_per_prior=3)
    reference = kd.forward([s.detach().float()], [t.float()])  # fp32 by hand, no autocast
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = kd([s], [t])
        raw = kd.forward([s], [t])  # bypassing __call__: bf16 computation
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(reference.item(), rel=1e-6)
    assert raw.dtype == torch.bfloat16
    assert abs(raw.float().item() - reference.item()) > 1e-3 * reference.item()
    value.backward()
    assert s.grad.dtype == torch.bfloat16 and torch.isfinite(s.grad.float()).all()
    # BCE on probabilities, which PyTorch refuses under CUDA autocast, runs in fp32
    frs = FRSHeadLoss(bce_input='probabilities')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert frs([s], [t]).dtype == torch.float32


def test_to_float32_and_autocast_disabled():
    half = torch.ones(2, dtype=torch.float16)
    double = torch.ones(2, dtype=torch.float64)
    marker = object()
    out = to_float32(dict(a=[half, (double, torch.tensor(3))], b=marker))
    assert out['a'][0].dtype == torch.float32
    assert out['a'][1][0] is double and out['a'][1][1].dtype == torch.int64
    assert isinstance(out['a'][1], tuple) and out['b'] is marker
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with autocast_disabled([half]):
            assert not torch.is_autocast_enabled('cpu')
        assert torch.is_autocast_enabled('cpu')
