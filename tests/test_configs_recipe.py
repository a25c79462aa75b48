"""The new-pair recipe's configs (configs/recipe/, docs/new_pair_recipe.md): the
Distiller builds from them with a random teacher checkpoint, and a training step
after its loss calibration gives finite losses whose PKD gradient on the student
equals the task loss's, as ``share=1.0`` promises."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd_det.models.distillers import load_model_cfg
from mmkd_det.registry import MODELS
from tests.conftest import ROOT, demo_batch

RECIPE = osp.join(ROOT, 'configs/recipe/pkd_retina_r18w48_r18w32_mydata.py')


def test_recipe_readme_names_every_config():
    with open(osp.join(ROOT, 'configs/recipe/README.md')) as f:
        text = f.read()
    assert 'docs/new_pair_recipe.md' in text
    for name in ('retinanet_r18w32_mydata.py', 'retinanet_r18w48_mydata.py',
                 'pkd_retina_r18w48_r18w32_mydata.py'):
        assert name in text


def test_recipe_distiller_builds_and_calibrated_step_is_finite(weights, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(RECIPE)
    assert cfg.model.loss_calibration == dict(share=1.0, window=20, at_iter=100)
    t_cfg = load_model_cfg(cfg.model.teacher, 'teacher')
    assert t_cfg.neck.out_channels == 96 and cfg.model.student.neck.out_channels == 64
    cfg.model.teacher_ckpt = weights(t_cfg)
    cfg.model.probe_size = 64
    # the shipped window measures iterations 80-99; one measured iteration here
    cfg.model.loss_calibration = dict(share=1.0, window=1, at_iter=1)
    model = MODELS.build(cfg.model)
    assert list(model.distill_losses['loss_pkd'].adapters['s_feats'].convs)  # 64 -> 96 adapter
    model.train()
    batch = demo_batch(model)
    model.set_progress(iter=0)  # measured: the loss applied with factor 0
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert losses['distill.loss_pkd'].item() == 0.0
    model.set_progress(iter=1)  # factor fixed from iteration 0 (same weights, same batch)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    for key, value in losses.items():
        for v in value if isinstance(value, list) else [value]:
            assert torch.isfinite(v).all(), key
    pkd = losses['distill.loss_pkd']
    # the task loss as calibration sums it (mmengine's parse_losses of the student's terms)
    task = model.parse_losses({k: v for k, v in losses.items() if not k.startswith('distill.')})[0]
    params = [p for p in model.student.parameters() if p.requires_grad]
    g_pkd = torch.autograd.grad(pkd, params, retain_graph=True, allow_unused=True)
    g_task = torch.autograd.grad(task, params, allow_unused=True)
    reached = [(a, b) for a, b in zip(g_pkd, g_task) if a is not None]
    assert reached and len(reached) < len(params)  # the FPN loss never reaches the head
    norm_pkd = torch.sqrt(sum((a.double()**2).sum() for a, _ in reached))
    norm_task = torch.sqrt(sum((b.double()**2).sum() for _, b in reached if b is not None))
    assert float(norm_pkd) == pytest.approx(float(norm_task), rel=1e-3)
