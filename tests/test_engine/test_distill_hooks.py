"""DistillationScheduleHook and DistillDiagnosticsHook in a real mmengine Runner."""
import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, tiny_model_cfg


class _TinyDetDataset(Dataset):
    """``n`` fixed random 64 x 64 images with boxes, as a detection pipeline yields them."""
    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, n: int = 4):
        torch.manual_seed(0)
        data = demo_mm_inputs(
            batch_size=n, image_shapes=[(3, 64, 64)] * n, num_items=[2] * n, num_classes=3)
        self.items = [
            dict(inputs=x, data_samples=s) for x, s in zip(data['inputs'], data['data_samples'])
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Probe(Hook):
    """Records, per training iteration, the factor the model uses and the step's
    logged values (after DistillDiagnosticsHook)."""
    priority = 'LOWEST'

    def __init__(self):
        self.scales, self.outputs, self.ratios = [], [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.scales.append(runner.model.distill_scale())
        self.outputs.append({k: v.item() for k, v in outputs.items()})
        hub = runner.message_hub
        self.ratios.append(
            hub.get_scalar('train/distill_ratio').current() if 'train/distill_ratio' in
            hub.log_scalars else None)


def _runner(tmp_path, model, hooks, epochs=3):
    return Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            dataset=_TinyDetDataset(4),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-4)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=hooks,
        default_scope='mmkd_det',
        log_level='WARNING',
        # a name of its own: runners built within one second would otherwise share
        # the timestamp-named MessageHub, and with it the scalars logged before
        experiment_name=tmp_path.name)


def test_schedule_and_diagnostics_hooks_in_a_runner(weights, tmp_path):
    """warmup_iters=4, stop_epoch=2, two iterations per epoch: the factor runs
    1/4, 2/4, 3/4, 1 over epochs 0-1 and is 0 in epoch 2, where only the zero
    ``distill.loss_stopped`` is logged; distill_ratio is logged while distilling
    and equals the distillation / task sum of the logged losses."""
    ckpt = weights(tiny_model_cfg('retina', 16))
    model = MODELS.build(frs_distiller_cfg('retina', ckpt, warmup_iters=4, stop_epoch=2))
    probe = _Probe()
    _runner(tmp_path, model,
            [dict(type='DistillationScheduleHook'),
             dict(type='DistillDiagnosticsHook'), probe]).train()
    assert probe.scales == [0.25, 0.5, 0.75, 1.0, 0.0, 0.0]
    for out in probe.outputs[:4]:
        assert {'distill.loss_frs_fpn', 'distill.loss_frs_cls'} <= set(out)
    for out in probe.outputs[4:]:
        assert out['distill.loss_stopped'] == 0.0 and 'distill.loss_frs_fpn' not in out
    for out, ratio in zip(probe.outputs[:4], probe.ratios[:4]):
        distill = out['distill.loss_frs_fpn'] + out['distill.loss_frs_cls']
        task = out['loss_cls'] + out['loss_bbox']
        assert ratio == pytest.approx(distill / task, rel=1e-6)
    assert probe.ratios[4:] == [probe.ratios[3]] * 2  # nothing new logged once stopped


def test_runner_without_schedule_hook_refuses_a_scheduled_distiller(weights, tmp_path):
    ckpt = weights(tiny_model_cfg('retina', 16))
    model = MODELS.build(frs_distiller_cfg('retina', ckpt, warmup_iters=4))
    with pytest.raises(
            RuntimeError,
            match=r'warmup_iters=4.*DistillationScheduleHook.*'
            r'custom_hooks.*set_progress'):
        _runner(tmp_path, model, [], epochs=1).train()
    # without a schedule nothing needs the hook
    plain = MODELS.build(frs_distiller_cfg('retina', ckpt))
    _runner(tmp_path, plain, [], epochs=1).train()


def test_schedule_scales_the_distillation_terms(weights):
    """The factor multiplies each distillation term: at iteration 0 of a 4-iteration
    warm-up the terms are a quarter of their full value (same batch, eval-mode BN)."""
    ckpt = weights(tiny_model_cfg('retina', 16))
    d = MODELS.build(frs_distiller_cfg('retina', ckpt, warmup_iters=4))
    d.eval()
    torch.manual_seed(0)
    data = d.data_preprocessor(
        demo_mm_inputs(
            batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[2, 1], num_classes=3), True)
    with pytest.raises(RuntimeError, match='set_progress'):
        d(**data, mode='loss')
    d.set_progress(iter=0)
    ramp = d(**data, mode='loss')
    d.set_progress(iter=10, epoch=1)
    full = d(**data, mode='loss')
    for k in ('distill.loss_frs_fpn', 'distill.loss_frs_cls'):
        assert ramp[k].item() == pytest.approx(full[k].item() / 4, rel=1e-6)
    assert ramp['loss_cls'][0].item() == pytest.approx(full['loss_cls'][0].item(), rel=1e-6)


def test_schedule_hook_leaves_other_models_alone(tmp_path):
    """A plain detector under the hooks trains as without them."""
    model = MODELS.build(tiny_model_cfg('retina', 8))
    probe_seen = []

    class _Seen(Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            probe_seen.append('train/distill_ratio' in runner.message_hub.log_scalars)

    _runner(
        tmp_path,
        model,
        [dict(type='DistillationScheduleHook'),
         dict(type='DistillDiagnosticsHook'),
         _Seen()],
        epochs=1).train()
    assert probe_seen == [False, False]


@pytest.mark.parametrize('kwargs,match',
                         [(dict(warmup_iters=-1), 'warmup_iters must be an integer >= 0'),
                          (dict(warmup_iters=2.5), 'warmup_iters must be an integer >= 0'),
                          (dict(stop_epoch=-2), 'stop_epoch must be None or an integer >= 0')])
def test_schedule_rejects_bad_values(kwargs, match):
    from mmkd_det.models.distillers import DistillSchedule
    with pytest.raises(ValueError, match=match):
        DistillSchedule(**kwargs)


def test_diagnostics_hook_rejects_a_limit_below_one():
    from mmkd_det.engine.hooks import DistillDiagnosticsHook
    with pytest.raises(ValueError, match='ratio_limit must be > 1'):
        DistillDiagnosticsHook(ratio_limit=0.5)


def test_diagnostics_hook_does_not_warn_about_calibrated_losses(weights, tmp_path, monkeypatch):
    """A loss_weight 1e6 times too large: warned about without calibration; with it
    (factors fixed after 2 iterations) the ratio is still logged but not warned about,
    since the factor, not loss_weight, sets the strength."""
    from mmkd_det.engine.hooks import distill_diagnostics_hook as mod
    calls = []
    monkeypatch.setattr(mod, 'print_log', lambda msg, **kw: calls.append(msg))
    ckpt = weights(tiny_model_cfg('retina', 16))
    warnings = []
    for calibration in (None, dict(share=0.5, window=1, at_iter=2)):
        cfg = frs_distiller_cfg('retina', ckpt, loss_calibration=calibration)
        cfg['distill_losses']['loss_frs_fpn']['loss_weight'] = 5e3
        model = MODELS.build(cfg)
        probe = _Probe()
        calls.clear()
        _runner(tmp_path / str(bool(calibration)), model,
                [dict(type='DistillationScheduleHook'),
                 dict(type='DistillDiagnosticsHook'), probe],
                epochs=2 if calibration else 1).train()
        warnings.append([c for c in calls if 'swamp' in c])
        assert probe.ratios[-1] is not None and probe.ratios[-1] > 0
    assert len(warnings[0]) == 1 and warnings[1] == []
