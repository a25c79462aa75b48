"""Memory soak: resident memory of the process over a long distillation run.

A Distiller keeps per-step state (recorders hooked on the detectors, the
teacher's outputs, the losses' masks, the schedule). A reference kept past its
step (a record never reset, a hook registered twice, a tensor appended to a
list for logging) shows up as resident memory that grows with the iterations.
:func:`run_soak` trains a distillation config through mmengine's Runner for a
fixed number of iterations (``IterBasedTrainLoop``, in this process, no data
worker processes, no validation) and samples the process's resident set size
(``VmRSS`` of ``/proc/self/status``) every ``interval`` iterations with
:class:`RSSRecorder`. :func:`rss_slope` fits a least-squares line to the
samples after ``warmup`` iterations (allocator pools, the data cache and the
optimizer state fill during the first ones) and gives its slope in MiB per
100 iterations; the run passes when the slope is at most ``threshold``.

Nothing is trained beforehand: without ``teacher_ckpt`` the teacher's own
initial weights are saved and loaded as its checkpoint (the memory a step
uses does not depend on the weights), and without ``data_root`` a small
synthetic dataset is generated in the work directory.

The command line is ``tools/analysis_tools/soak.py``.
"""
import os.path as osp
import platform
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope

from .timing import _status_kb

#: what a soak's verdict line and table call the measured figure
SLOPE_UNIT = 'MiB per 100 iterations'
#: hooks of a distillation config that need a validation loader, left out
NEEDS_VAL = ('TeacherEvalHook', )


def rss_mib() -> float:
    """Resident memory of this process now (``VmRSS``), in MiB.

    Raises:
        RuntimeError: ``/proc/self/status`` cannot be read (not Linux).
    """
    try:
        return _status_kb('VmRSS') / 1024
    except OSError as err:
        raise RuntimeError(f'Cannot read the resident memory of the process from /proc/self/status '
                           f'({err}); the soak measurement needs Linux.') from err


class RSSRecorder(Hook):
    """Sample the process's resident memory during training.

    A sample is taken before the first iteration (``iter`` 0) and after every
    ``interval``-th iteration; each holds the iteration count, ``rss_mib``
    (:func:`rss_mib`) and the total loss of that iteration (so that a soak also
    shows that training stayed finite).

    Args:
        interval (int): iterations between two samples.
    """

    priority = 'LOWEST'

    def __init__(self, interval: int = 10):
        if interval < 1:
            raise ValueError(f'interval must be a positive number of iterations, got {interval}.')
        self.interval = interval
        self.samples: List[dict] = []

    def before_train(self, runner) -> None:
        self.samples.append(dict(iter=runner.iter, rss_mib=rss_mib(), loss=None))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        done = runner.iter + 1
        if done % self.interval:
            return
        loss = None
        if outputs is not None and 'loss' in outputs:
            loss = float(outputs['loss'].detach())
        self.samples.append(dict(iter=done, rss_mib=rss_mib(), loss=loss))


def rss_slope(iters: Sequence[float], rss: Sequence[float], warmup: int = 0) -> float:
    """Least-squares slope of resident memory against iterations, after warm-up.

    Args:
        iters (Sequence[float]): the iteration of each sample.
        rss (Sequence[float]): the resident memory of each sample, in MiB.
        warmup (int): samples taken before this iteration are left out.

    Returns:
        float: the fitted slope in MiB per 100 iterations.

    Raises:
        ValueError: the lengths differ, or fewer than two samples at distinct
            iterations are left after ``warmup``.
    """
    if len(iters) != len(rss):
        raise ValueError(f'{len(iters)} iterations but {len(rss)} memory samples.')
    points = [(float(i), float(r)) for i, r in zip(iters, rss) if i >= warmup]
    if len({i for i, _ in points}) < 2:
        raise ValueError(
            f'{len(points)} sample(s) at or after warm-up iteration {warmup}: a slope needs '
            f'two at distinct iterations. Run more iterations, sample more often (smaller '
            f'interval) or shorten the warm-up.')
    mean_i = sum(i for i, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    cov = sum((i - mean_i) * (r - mean_r) for i, r in points)
    var = sum((i - mean_i)**2 for i, _ in points)
    return 100 * cov / var


def save_init_teacher(cfg: Config, path: str, seed: int = 0) -> str:
    """Save the initial weights of the teacher a Distiller config describes as
    a checkpoint at ``path`` (a stand-in where trained weights do not matter).

    Args:
        cfg (Config): a config whose ``model`` is a Distiller.
        path (str): the checkpoint file to write.
        seed (int): the random seed of the initialisation.

    Returns:
        str: ``path``.
    """
    import mmkd_det  # noqa: F401  (registers the modules)
    from mmkd_det.models.distillers.model_config import load_model_cfg
    from mmkd_det.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        teacher = MODELS.build(load_model_cfg(cfg.model.teacher, 'teacher'))
    teacher.init_weights()
    torch.save(
        dict(meta=dict(soak='initial weights, untrained'), state_dict=teacher.state_dict()), path)
    return path


def soak_config(config: str,
                work_dir: str,
                iters: int,
                data_root: str,
                teacher_ckpt: str,
                log_interval: int = 50,
                cfg_options: Optional[dict] = None) -> Config:
    """The Runner config of a soak: ``config`` trained for ``iters`` iterations.

    The train loader reads ``data_root`` in this process (no worker processes,
    so that the samples count every byte the training holds) through an
    ``InfiniteSampler`` (with the config's ``shuffle``), validation,
    checkpoints and the hooks that need a validation loader
    (:data:`NEEDS_VAL`) are left out; the other hooks of the config stay.

    Args:
        config (str): a distillation (Distiller) config.
        work_dir (str): the Runner's work directory.
        iters (int): iterations to train.
        data_root (str): the dataset folder of the train loader.
        teacher_ckpt (str): the teacher weights.
        log_interval (int): iterations between two log lines.
        cfg_options (dict, optional): overrides, applied first.

    Returns:
        Config: the config to build the Runner from.

    Raises:
        ValueError: ``config`` is not a distillation config.
    """
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options or {})
    if cfg.model.get('type') != 'Distiller':
        raise ValueError(f'{config} is not a distillation config (model.type is '
                         f'{cfg.model.get("type")!r}); the soak measures a Distiller.')
    cfg.model.teacher_ckpt = teacher_ckpt
    loader = cfg.train_dataloader
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset.data_root = osp.join(data_root, '')
    # mmengine pauses 2 s each time an iteration-based loop restarts a finite
    # sampler: a small dataset would spend most of the soak asleep
    shuffle = loader.get('sampler', {}).get('shuffle', True)
    loader.sampler = dict(type='InfiniteSampler', shuffle=shuffle)
    cfg.work_dir = work_dir
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader',
                'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=log_interval)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] not in NEEDS_VAL]
    cfg.log_processor = dict(type='LogProcessor', window_size=log_interval, by_epoch=False)
    cfg.load_from, cfg.resume = None, False
    return cfg


def run_soak(config: str,
             work_dir: str,
             iters: int = 1000,
             interval: int = 10,
             warmup: int = 200,
             threshold: float = 1.0,
             data_root: Optional[str] = None,
             teacher_ckpt: Optional[str] = None,
             num_images: int = 16,
             cfg_options: Optional[dict] = None) -> Dict:
    """Train ``config`` for ``iters`` iterations and measure its resident memory.

    Args:
        config (str): a distillation (Distiller) config.
        work_dir (str): the Runner's work directory (also holds the generated
            data and teacher checkpoint).
        iters (int): iterations to train.
        interval (int): iterations between two memory samples.
        warmup (int): iterations left out of the fitted slope.
        threshold (float): the largest slope that passes, in MiB per 100
            iterations.
        data_root (str, optional): the train data; default: ``num_images``
            synthetic images generated under ``work_dir/data`` at the size of
            the config's images.
        teacher_ckpt (str, optional): the teacher weights; default: the
            teacher's initial weights (:func:`save_init_teacher`).
        num_images (int): train images to generate when ``data_root`` is None.
        cfg_options (dict, optional): config overrides (e.g. the batch size).

    Returns:
        dict: the setting, the samples (``iter``, ``rss_mib``, ``loss``),
        ``slope_mib_per_100_iters``, ``growth_mib`` (last minus first sample
        after warm-up), ``peak_mib``, ``passed`` and the time per iteration.

    Raises:
        ValueError: ``warmup`` leaves fewer than two samples (see
            :func:`rss_slope`) or ``config`` is not a distillation config.
    """
    from mmengine.runner import Runner

    import mmkd_det  # noqa: F401  (registers the modules)
    from mmkd_det.apis import check_config
    if not 0 <= warmup <= iters - interval:
        raise ValueError(f'warmup ({warmup}) must leave at least two samples of {iters} '
                         f'iterations sampled every {interval}: use warmup <= '
                         f'{iters - interval}.')
    if data_root is None:
        from mmkd_det.datasets.synthetic import generate_synthetic_dataset
        data_root = osp.join(work_dir, 'data')
        size = max(_pipeline_scale(Config.fromfile(config)))
        generate_synthetic_dataset(
            data_root, num_train=num_images, num_val=1, img_size=size, seed=0, formats=('coco', ))
    if teacher_ckpt is None:
        base = Config.fromfile(config)
        base.merge_from_dict(cfg_options or {})
        teacher_ckpt = save_init_teacher(base, osp.join(work_dir, 'teacher_init.pth'))
    cfg = soak_config(config, work_dir, iters, data_root, teacher_ckpt,
                      max(interval, min(50, iters)), cfg_options)
    check_config(cfg)
    runner = Runner.from_cfg(cfg)
    recorder = RSSRecorder(interval)
    runner.register_hook(recorder)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    samples = recorder.samples
    fitted = [s for s in samples if s['iter'] >= warmup]
    slope = rss_slope([s['iter'] for s in samples], [s['rss_mib'] for s in samples], warmup)
    return dict(
        config=config,
        iters=iters,
        interval=interval,
        warmup=warmup,
        threshold_mib_per_100_iters=threshold,
        batch_size=cfg.train_dataloader.batch_size,
        num_images=_num_images(runner),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        seconds=round(seconds, 1),
        seconds_per_iter=round(seconds / iters, 4),
        samples=samples,
        start_mib=samples[0]['rss_mib'],
        warm_mib=fitted[0]['rss_mib'],
        end_mib=samples[-1]['rss_mib'],
        peak_mib=max(s['rss_mib'] for s in samples),
        growth_mib=fitted[-1]['rss_mib'] - fitted[0]['rss_mib'],
        slope_mib_per_100_iters=slope,
        passed=slope <= threshold)


def _pipeline_scale(cfg: Config) -> tuple:
    """The ``scale`` of the train pipeline's ``Resize`` (128 when it has none)."""
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if step.get('type') == 'Resize' and 'scale' in step:
            scale = step['scale']
            return tuple(scale) if isinstance(scale, (list, tuple)) else (scale, )
    return (128, )


def _num_images(runner) -> Optional[int]:
    try:
        return len(runner.train_dataloader.dataset)
    except TypeError:
        return None


def verdict(record: Dict) -> str:
    """One line: the slope, the threshold and PASS or FAIL."""
    word = 'PASS' if record['passed'] else 'FAIL'
    return (f'{word}: resident memory slope {record["slope_mib_per_100_iters"]:+.3f} '
            f'{SLOPE_UNIT} after iteration {record["warmup"]} (threshold '
            f'{record["threshold_mib_per_100_iters"]:.3f}), {record["iters"]} iterations.')


def soak_table(record: Dict) -> str:
    """A markdown table of a :func:`run_soak` record: the setting and the
    figures, and the command that made it when the record holds one
    (``command``, as ``tools/analysis_tools/soak.py`` adds)."""
    rows = [
        ('config', f'`{record["config"]}`'),
        ('iterations (batch, images, torch threads)',
         f'{record["iters"]} ({record["batch_size"]}, {record["num_images"]}, '
         f'{record["torch_threads"]})'),
        ('samples', f'every {record["interval"]} iterations, {len(record["samples"])} in all'),
        ('RSS before training / at warm-up end (iteration '
         f'{record["warmup"]}) / at the end / peak',
         f'{record["start_mib"]:.1f} / {record["warm_mib"]:.1f} / {record["end_mib"]:.1f} / '
         f'{record["peak_mib"]:.1f} MiB'),
        ('growth after warm-up (last minus first sample)', f'{record["growth_mib"]:+.1f} MiB'),
        ('least-squares slope after warm-up',
         f'{record["slope_mib_per_100_iters"]:+.3f} {SLOPE_UNIT}'),
        ('threshold', f'{record["threshold_mib_per_100_iters"]:.3f} {SLOPE_UNIT}'),
        ('verdict', 'PASS' if record['passed'] else 'FAIL'),
        ('time', f'{record["seconds"]:.0f} s ({record["seconds_per_iter"]:.3f} s/iteration)'),
    ]
    if record.get('command'):
        rows.insert(0, ('command', f'`{record["command"]}`'))
    lines = ['| quantity | value |', '| --- | --- |']
    lines += [f'| {k} | {v} |' for k, v in rows]
    return '\n'.join(lines) + '\n'
