"""Find the files a Distiller names: its detector configs and its teacher's weights.

Relative paths follow one rule: **the current directory first, then the
installed mmkd_det's own tree**. In detail, a config path (``cfg_path``) is
resolved the same way in a source checkout, an editable install and a wheel
installed anywhere:

1. ``mmkd_det::<folder>/<file>.py``: a config shipped with mmkd_det, i.e.
   ``<folder>/<file>.py`` under :func:`shipped_configs_dir` (for example
   ``mmkd_det::retinanet/retinanet_r18w48_synthetic.py``). Other packages'
   ``<package>::<path>`` (``mmdet::...``) are loaded by mmengine from that
   package's installed configs.
2. An absolute path is used as it is.
3. A relative path is looked up in the current directory first, then under
   :func:`shipped_configs_dir`.

A checkpoint path (``teacher_ckpt``) is resolved by the same rule
(:func:`resolve_checkpoint_path`): a URL (``https://...``) or other
``<scheme>://`` name and an absolute path are used as they are; a relative path
is looked up in the current directory first, then under
:func:`project_root` (the directory holding the shipped ``configs/``: the
checkout, in a source install), so ``work_dirs/<run>/epoch_12.pth`` written by
a run started in the checkout is found from any directory.

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


def project_root() -> str:
    """The directory holding the shipped ``configs/`` (links resolved): the
    source checkout in a source or editable install."""
    return osp.dirname(osp.realpath(shipped_configs_dir()))


def _relative_candidates(path: str, base: str) -> List[str]:
    """``path`` made absolute: itself if absolute, else under the current
    directory, then under ``base``."""
    path = osp.expanduser(path)
    if osp.isabs(path):
        return [path]
    return [osp.abspath(path), osp.join(base, path)]


def _tried(candidates: List[str]) -> str:
    return ''.join(f'\n  - {c}' for c in candidates)


def project_candidates(path: str) -> List[str]:
    """The locations the module's rule tries for a file ``path`` (a checkpoint,
    a data root), in order: itself if absolute, else under the current
    directory, then under :func:`project_root`."""
    return _relative_candidates(path, project_root())


def resolve_checkpoint_path(path: str, key: str = 'teacher_ckpt', hint: str = '') -> str:
    """The checkpoint ``path`` names, by the module's rule (see above).

    Args:
        path (str): a URL / ``<scheme>://`` name (returned as it is), an
            absolute path, or a path relative to the current directory or
            :func:`project_root`.
        key (str): the config key that holds ``path``, for the error.
        hint (str): what to do when it is missing (e.g. "train the teacher
            first"), appended to the error.

    Returns:
        str: ``path`` if it is a URL, else an existing file.

    Raises:
        FileNotFoundError: no candidate exists; the message lists them all.
    """
    if '://' in path:
        return path
    candidates = project_candidates(path)
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'{key} {path!r} not found. Tried:{_tried(candidates)}\nRelative paths are looked up '
        f'in the current directory ({os.getcwd()}), then under the mmkd_det project root '
        f'({project_root()}).{" " + hint if hint else ""}')


def config_candidates(path: str) -> List[str]:
    """The files :func:`resolve_config_path` tries for ``path``, in order."""
    if path.startswith(SHIPPED_PREFIX):
        return [osp.join(shipped_configs_dir(), path[len(SHIPPED_PREFIX):])]
    return _relative_candidates(path, shipped_configs_dir())


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
    raise FileNotFoundError(
        f'Config {path!r} not found. Tried:{_tried(candidates)}\nRelative paths are looked up '
        f'in the current directory ({os.getcwd()}), then in the configs shipped with mmkd_det; '
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
