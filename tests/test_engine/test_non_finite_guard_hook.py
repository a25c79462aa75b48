"""NonFiniteGuardHook in real mmengine Runners: a diverged run stops with a clear
error before any checkpoint is written or rotated out."""
import logging
import math
import os
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmkd_det.engine.hooks import NonFiniteGuardHook, non_finite_tensors
from mmkd_det.registry import MODELS
from tests.conftest import ROOT, frs_distiller_cfg, tiny_model_cfg
from tests.test_engine.test_distill_hooks import _TinyDetDataset


class _ToyLossModel(BaseModel):
    """``y = fc(x)`` with a task loss ``mean(y^2)`` and a ``distill.`` term of a
    tenth of it; the loss named ``nan_key`` is NaN at call ``nan_at`` (0-based)."""

    def __init__(self, nan_at: int = -1, nan_key: str = 'loss_task'):
        super().__init__()
        self.fc = nn.Linear(2, 1)
        self.nan_at, self.nan_key, self.calls = nan_at, nan_key, 0

    def forward(self, inputs, data_samples=None, mode='loss'):
        loss = self.fc(inputs).pow(2).mean()
        losses = {'loss_task': loss, 'distill.loss_kd': 0.1 * loss}
        if self.calls == self.nan_at:
            losses[self.nan_key] = losses[self.nan_key] * math.nan
        self.calls += 1
        return losses


class _Poison(Hook):
    """Fills ``param`` with NaN after training iteration ``at`` (0-based)."""
    priority = 'NORMAL'

    def __init__(self, at: int, param: str):
        self.at, self.param = at, param

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == self.at:
            with torch.no_grad():
                dict(runner.model.named_parameters())[self.param].fill_(math.nan)


def _runner(tmp_path, model, dataset, *, epochs=3, lr=1e-3, hooks=(), by_epoch=True, **kw):
    """A Runner saving every epoch (or iteration) with max_keep_ckpts=1."""
    if dataset is None:
        dataset = [dict(inputs=torch.tensor([1.0, -2.0]) * (i + 1)) for i in range(4)]
        collate = dict(type='default_collate')
    else:
        collate = dict(type='pseudo_collate')
    return Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            dataset=dataset,
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=collate),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        default_hooks=dict(
            logger=None,
            checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                            by_epoch=by_epoch)),
        custom_hooks=[dict(type='NonFiniteGuardHook'), *hooks],
        default_scope='mmkd_det',
        log_level='WARNING',
        experiment_name=f'{tmp_path.name}_{kw.pop("name", "run")}',
        **kw)


def _ckpts(tmp_path):
    return sorted(f for f in os.listdir(tmp_path / 'work') if f.endswith('.pth'))


def _assert_finite_ckpt(path):
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    assert state and non_finite_tensors(state) == []


def test_non_finite_tensors_names_the_bad_ones():
    state = dict(
        a=torch.ones(3),
        b=torch.tensor([1.0, math.inf]),
        n=torch.tensor(7),  # integer: never NaN, skipped
        c=torch.tensor([[math.nan]], dtype=torch.float64),
        e=torch.empty(0))
    assert non_finite_tensors(state) == ['b', 'c']
    assert non_finite_tensors(dict(a=torch.zeros(2), n=torch.tensor(1))) == []
    assert non_finite_tensors({}) == []


@pytest.mark.parametrize(
    'nan_key,kind',
    [('loss_task', 'task loss loss_task = nan'),
     ('distill.loss_kd', 'distillation loss distill.loss_kd = nan')])
def test_nan_loss_stops_before_the_checkpoint(tmp_path, nan_key, kind):
    """Two iterations per epoch, NaN loss at iteration 4 (epoch 2): the run stops
    there, naming the loss; epoch_1.pth (max_keep_ckpts=1) is kept, finite."""
    runner = _runner(tmp_path, _ToyLossModel(nan_at=3, nan_key=nan_key), None)
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert msg.startswith(f'Non-finite loss at iteration 4 (epoch 2, batch 2): {kind}. ')
    assert 'the last good checkpoint is kept: ' in msg and msg.count('epoch_1.pth') == 1
    for cause in ('optim_wrapper.optimizer.lr', 'LinearLR', 'optim_wrapper.clip_grad'):
        assert cause in msg
    assert _ckpts(tmp_path) == ['epoch_1.pth']
    _assert_finite_ckpt(tmp_path / 'work' / 'epoch_1.pth')
    # the weights did go NaN: without the guard epoch_2.pth would hold them
    assert non_finite_tensors(runner.model.state_dict()) == ['fc.weight', 'fc.bias']


def test_by_iteration_checkpoints_keep_the_last_good_one(tmp_path):
    """CheckpointHook(by_epoch=False, interval=1): the iteration whose loss is NaN
    writes nothing; iter_2.pth, saved before, survives."""
    runner = _runner(tmp_path, _ToyLossModel(nan_at=2), None, by_epoch=False)
    with pytest.raises(FloatingPointError, match=r'^Non-finite loss at iteration 3 '):
        runner.train()
    assert _ckpts(tmp_path) == ['iter_2.pth']
    _assert_finite_ckpt(tmp_path / 'work' / 'iter_2.pth')


def test_poisoned_weights_with_finite_losses_are_not_saved(tmp_path):
    """The losses stay finite but a weight turns NaN after the last iteration of
    epoch 2: the epoch-end save is refused and epoch_1.pth survives."""
    runner = _runner(tmp_path, _ToyLossModel(), None, hooks=[_Poison(3, 'fc.bias')])
    with pytest.raises(
            FloatingPointError,
            match=r'^Non-finite model weights after iteration 4 \(epoch 2\): 1 of 2 '
            r'floating-point tensors hold NaN or inf \(fc\.bias\)\. Training stopped before '
            r'any checkpoint was written from these weights \(the last good checkpoint is '
            r'kept: .*epoch_1\.pth\)\. Likely causes: '):
        runner.train()
    assert _ckpts(tmp_path) == ['epoch_1.pth']
    _assert_finite_ckpt(tmp_path / 'work' / 'epoch_1.pth')


def test_any_save_of_non_finite_weights_is_refused(tmp_path):
    """before_save_checkpoint: a direct runner.save_checkpoint writes no file."""
    runner = _runner(tmp_path, _ToyLossModel(), None, epochs=1)
    runner.train()
    with torch.no_grad():
        runner.model.fc.weight[0, 1] = math.inf
    with pytest.raises(FloatingPointError, match=r'fc\.weight\).*this checkpoint is not '
                       r'written\. Likely causes'):
        runner.save_checkpoint(str(tmp_path / 'work'), 'manual.pth')
    assert not (tmp_path / 'work' / 'manual.pth').exists()


@pytest.mark.parametrize('distill', [False, True])
def test_diverging_detector_keeps_its_last_good_checkpoint(tmp_path, weights, distill):
    """The issue's reproduction: lr jumps to 1e6 from epoch 2 (MultiStepLR, gamma
    1e10) on a tiny RetinaNet, alone or as a Distiller's student with
    distillation stopped (stop_epoch=0). The run raises (a non-finite loss or
    weights) within 4 epochs, and the one checkpoint left (max_keep_ckpts=1) is the
    finite one the message names."""
    if distill:
        ckpt = weights(tiny_model_cfg('retina', 16))
        model = MODELS.build(frs_distiller_cfg('retina', ckpt, stop_epoch=0))
        hooks = [dict(type='DistillationScheduleHook')]
    else:
        model = MODELS.build(tiny_model_cfg('retina', 8))
        hooks = []
    runner = _runner(
        tmp_path,
        model,
        _TinyDetDataset(4),
        lr=1e-4,
        hooks=hooks,
        epochs=4,
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=1e10, by_epoch=True))
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    kept = _ckpts(tmp_path)
    assert len(kept) == 1 and kept[0] in ('epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth')
    assert re.match(
        r'^Non-finite (loss|model weights) .*Training stopped before any checkpoint was '
        rf'written from these weights \(the last good checkpoint is kept: .*{kept[0]}\)\. '
        r'Likely causes: a learning rate too high .*optim_wrapper\.optimizer\.lr', str(err.value))
    _assert_finite_ckpt(tmp_path / 'work' / kept[0])


def test_only_the_first_guard_acts_and_a_late_checkpoint_hook_is_reported(
        tmp_path, monkeypatch):
    """Both runtime bases add a guard: the second stays idle. A CheckpointHook
    ordered before the guard gets a warning."""
    from mmkd_det.engine.hooks import non_finite_guard_hook
    logged = []
    monkeypatch.setattr(non_finite_guard_hook, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    runner = _runner(tmp_path, _ToyLossModel(), None, hooks=[dict(type='NonFiniteGuardHook')])
    guards = [h for h in runner.hooks if isinstance(h, NonFiniteGuardHook)]
    for guard in guards:
        guard.before_run(runner)
    assert [g._active for g in guards] == [True, False] and logged == []

    ckpt_hook = next(h for h in runner.hooks if type(h).__name__ == 'CheckpointHook')
    runner._hooks.remove(ckpt_hook)
    runner.register_hook(ckpt_hook, priority='VERY_HIGH')
    guards[0].before_run(runner)
    assert logged == [(
        "['CheckpointHook'] run before NonFiniteGuardHook (priority LOW): a diverged run "
        'may rotate out its last good checkpoint before the guard stops it. Give the '
        'checkpoint hook a lower priority than the guard.', logging.WARNING)]


@pytest.mark.parametrize('cfg_file', [
    'configs/retinanet/retinanet_r18w32_synthetic.py',
    'configs/frs/frs_retina_r18w48_r18w32_synthetic.py',
    'configs/frs/frs_retina_r101_r50.py',
])
def test_runtime_bases_register_the_guard(cfg_file):
    """Plain synthetic detectors (default_runtime) and every distillation config
    (distill_runtime) carry the guard."""
    cfg = Config.fromfile(os.path.join(ROOT, cfg_file))
    hooks = list(cfg.get('default_hooks', {}).values()) + list(cfg.get('custom_hooks', []))
    assert any(h and h.get('type') == 'NonFiniteGuardHook' for h in hooks)
