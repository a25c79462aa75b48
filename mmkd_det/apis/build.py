"""Build a config's Distiller and its data the way the tools need them (no Runner)."""
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.registry import DefaultScope


def build_distiller(config: str,
                    cfg_options: Optional[dict] = None,
                    teacher_ckpt: Optional[str] = None) -> Tuple[Config, object]:
    """Load ``config``, apply ``cfg_options`` and ``teacher_ckpt`` and build its
    Distiller under the ``mmkd_det`` scope.

    Returns:
        tuple: the merged config and the model.

    Raises:
        ValueError: the config's model is not a Distiller.
    """
    import mmkd_det  # noqa: F401  (registers the modules)
    from mmkd_det.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options or {})
    if cfg.model.get('type') != 'Distiller':
        raise ValueError(f'{config} is not a distillation config (model.type is '
                         f'{cfg.model.get("type")!r}); give a config whose model is a '
                         f'Distiller.')
    if teacher_ckpt:
        cfg.model.teacher_ckpt = teacher_ckpt
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        model = MODELS.build(cfg.model)
    return cfg, model


def build_loader(loader_cfg: dict, seed: Optional[int] = None, **overrides):
    """An in-process dataloader (no worker processes) of a config's
    ``*_dataloader`` with ``overrides`` (e.g. ``batch_size``), built under the
    ``mmkd_det`` scope, as the tools read a few batches."""
    from mmengine.runner import Runner
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        return Runner.build_dataloader(
            dict(loader_cfg, num_workers=0, persistent_workers=False, **overrides), seed=seed)


def first_batch(loader_cfg: dict, **overrides) -> dict:
    """The first batch of :func:`build_loader` ``(loader_cfg, **overrides)``, as
    the loader yields it (``inputs`` and ``data_samples``)."""
    return next(iter(build_loader(loader_cfg, **overrides)))


def build_distiller_and_batch(config: str,
                              cfg_options: Optional[dict] = None,
                              teacher_ckpt: Optional[str] = None,
                              split: str = 'train',
                              **loader_overrides) -> Tuple[Config, object, dict]:
    """:func:`build_distiller` and the first batch of the config's
    ``<split>_dataloader`` (with ``loader_overrides``, e.g. ``batch_size``).

    Returns:
        tuple: the merged config, the Distiller and the batch.

    Raises:
        ValueError: the config's model is not a Distiller.
    """
    cfg, model = build_distiller(config, cfg_options, teacher_ckpt)
    return cfg, model, first_batch(cfg[f'{split}_dataloader'], **loader_overrides)
