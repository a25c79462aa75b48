"""Registries of mmkd_det: children of mmdet's, so every mmdet type resolves too.

Configs set ``default_scope = 'mmkd_det'``; our types and all mmdet (and mmengine)
types are then found without prefixes or ``custom_imports``.
"""
from mmdet import registry as mmdet_registry
from mmengine.registry import Registry

_NODES = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS',
          'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS',
          'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
          'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS')

_LOCATIONS = {
    'MODELS': ['mmkd_det.models'],
    'HOOKS': ['mmkd_det.engine'],
    'DATASETS': ['mmkd_det.datasets'],
}

# The other registries hold only mmdet's and mmengine's types (registered below), so
# their location is this module. It must not be empty: mmengine treats a package it
# knows by name (mmkd_det is made known for `mmkd_det::` config names) that sets no
# location as a pre-0.7 one, and imports `<package>.utils` instead, warning it is absent.
for _name in _NODES:
    globals()[_name] = Registry(
        _name.lower(),
        parent=getattr(mmdet_registry, _name),
        scope='mmkd_det',
        locations=_LOCATIONS.get(_name, ['mmkd_det.registry']))

__all__ = list(_NODES)

# mmdet registers its datasets, metrics, hooks and visualizers only when their
# packages are imported; our child registries look them up, so import them now.
from mmdet.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=False)
