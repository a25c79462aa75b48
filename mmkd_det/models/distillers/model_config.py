"""Find and load the detector configs a Distiller's ``teacher`` / ``student`` name.

A config path (``cfg_path``) is resolved by one rule, the same in a source
checkout, an editable install and a wheel installed anywhere:

1. ``mmkd_det::<folder>/<file>.py``: a config shipped with mmkd_det, i.e.
   ``<folder>/<file>.py`` under :func:`shipped_configs_dir` (for example
   ``mmkd_det::retinanet/retinanet_r18w48_synthetic.py``). Other packages'
   ``<package>::<path>`` (``mmdet::...``) are loaded by mmengine from that
   package's installed configs.
2. An absolute path is used as it is.
3. A relative path is looked up in the current directory first, then under
   :func:`shipped_configs_dir`.

A path found nowhere raises :class:`FileNotFoundError` listing every location
tried.
"""
import os
import os.path as osp
from typing import List, Union

from mmengine.config import Config, ConfigDict

#: prefix of the configs shipped with mmkd_det (as ``mmdet::`` for mmdet's).
SHIPPED_PREFIX = 'mmkd_det::'


def shipped_configs_dir() -> str:
    """The ``configs`` directory shipped with the imported mmkd_det.

    It is ``mmkd_det/.mim/configs``: package data copied into a wheel (as
    OpenMMLab packages ship theirs), and in a source checkout a link to the
    checkout's ``configs/`` (so editable installs see edits at once).
    """
    import mmkd_det
    return osp.join(osp.dirname(osp.abspath(mmkd_det.__file__)), '.mim', 'configs')


def config_candidates(path: str) -> List[str]:
    """The files :func:`resolve_config_path` tries for ``path``, in order."""
    if path.startswith(SHIPPED_PREFIX):
        return [osp.join(shipped_configs_dir(), path[len(SHIPPED_PREFIX):])]
    path = osp.expanduser(path)
    if osp.isabs(path):
        return [path]
    return [osp.abspath(path), osp.join(shipped_configs_dir(), path)]


def resolve_config_path(path: str) -> str:
    """The config file ``path`` names, by the module's rule (see above).

    Args:
        path (str): ``mmkd_det::<folder>/<file>.py``, an absolute path or a
            path relative to the current directory or the shipped configs.

    Returns:
        str: an existing file.

    Raises:
        FileNotFoundError: no candidate exists; the message lists them all.
    """
    candidates = config_candidates(path)
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    tried = ''.join(f'\n  - {c}' for c in candidates)
    raise FileNotFoundError(
        f'Config {path!r} not found. Tried:{tried}\nRelative paths are looked up in the '
        f'current directory ({os.getcwd()}), then in the configs shipped with mmkd_det; '
        f'name a shipped config as {SHIPPED_PREFIX}<folder>/<file>.py (e.g. '
        f'{SHIPPED_PREFIX}retinanet/retinanet_r18w48_synthetic.py).')


def load_config(path: str) -> Config:
    """:class:`Config` of ``path``: another package's ``<package>::<path>``
    through mmengine, anything else through :func:`resolve_config_path`."""
    if '::' in path and not path.startswith(SHIPPED_PREFIX):
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(resolve_config_path(path))


def load_model_cfg(cfg: Union[str, dict], role: str) -> ConfigDict:
    """Resolve a teacher/student model config.

    Args:
        cfg (str | dict): an inline mmdet model dict, a config path (resolved
            as the module docstring says), or ``dict(cfg_path=..., **overrides)``
            whose overrides are merged into the file's ``model`` (so
            ``num_classes`` etc. can be changed by inheritance).
        role (str): ``'teacher'`` or ``'student'``, for error messages.

    Returns:
        ConfigDict: the model config.
    """
    if isinstance(cfg, str):
        cfg = dict(cfg_path=cfg)
    cfg = ConfigDict(cfg)
    path = cfg.pop('cfg_path', None)
    if path is None:
        if 'type' not in cfg:
            raise KeyError(f'{role} config needs `type` (an inline mmdet model dict) or '
                           f'`cfg_path` (a config file), got keys {sorted(cfg)}.')
        return cfg
    file_cfg = load_config(path)
    if 'model' not in file_cfg:
        raise KeyError(f'{role} cfg_path {path!r} defines no `model`.')
    return ConfigDict(Config._merge_a_into_b(cfg, ConfigDict(file_cfg.model)))
