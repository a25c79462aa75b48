"""Confined shims for the pinned stack (torch >= 2.6, mmengine 0.10.7, mmrazor 1.0.0).

Each shim replaces one upstream name, is idempotent, and names the upstream issue it works around
and when to delete it. Imports mmengine only (no mmcv.ops / mmdet.models), so it is safe early.
"""
import importlib
import importlib.util
import logging
import os
import pickle
import sys

import torch
from mmengine.logging import print_log

__all__ = [
    'apply_patches', 'patch_mmengine_external_configs', 'check_environment', 'cpu_distributed_cfg',
    'import_mmrazor_models', 'load_checkpoint_file', 'patch_mmengine_checkpoint_loading',
    'patch_mmengine_cpu_distributed'
]
_FALLBACK_WARNED = set()  # files already reported as loaded with weights_only=False
_MMRAZOR_MODELS = None


def _history_buffer_getattr(obj, name):
    """``builtins.getattr`` for weights-only loads, limited to ``getattr(HistoryBuffer, 'min')``
    etc.: how runner checkpoints pickle ``HistoryBuffer._statistics_methods``."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allow-listed')


def _runner_checkpoint_safe_globals():
    """What a Runner checkpoint needs beyond tensors: ``message_hub`` and numpy values."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    entries = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # written by numpy 1.x / 2.x
        entries += [(multiarray._reconstruct, f'{mod}._reconstruct'),
                    (multiarray.scalar, f'{mod}.scalar')]
    # A pickled dtype is rebuilt on its per-dtype class (Float64DType...); numeric/bool kinds only.
    return entries + sorted({type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDG'}, key=str)


def _torch_load(filename, map_location=None):
    if not hasattr(torch.serialization, 'safe_globals'):  # torch < 2.5: weights_only not default
        return torch.load(filename, map_location=map_location)
    try:
        with torch.serialization.safe_globals(_runner_checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).partition('error:')[2].strip().split('\n')[0].split('. ')[0]
    if filename not in _FALLBACK_WARNED:
        _FALLBACK_WARNED.add(filename)
        print_log(
            f'{filename} loaded with weights_only=False ({reason or "not allow-listed"}); '
            'only load checkpoints you trust.',
            logger='current',
            level=logging.WARNING)
    return torch.load(filename, map_location=map_location, weights_only=False)


def load_from_local(filename, map_location=None):
    """Local-file scheme with mmengine's contract (name kept for its "by local backend" log)."""
    filename = os.path.expanduser(str(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return _torch_load(filename, map_location)


def patch_mmengine_checkpoint_loading():
    """Make mmengine load its own runner checkpoints under torch >= 2.6 (``weights_only`` default).

    Works around open-mmlab/mmengine#1655: 0.10.7's ``load_from_local`` uses the default, so
    ``resume=True``, ``load_from=`` and a user's own teacher checkpoint fail on ``HistoryBuffer`` /
    numpy objects. Re-registers the ``''`` scheme: ``weights_only=True`` with the allow-list above,
    else ``weights_only=False`` and one warning per file. ``http(s)://`` needs nothing (torch.hub's
    ``weights_only`` defaults to False). Delete once an mmengine release has #1670 (on main).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def load_checkpoint_file(path, map_location='cpu'):
    """Read a checkpoint dict (teacher weights, student export) with the logic above; ``path`` is
    a local file or any mmengine scheme (``http://``...), ``map_location`` as in torch.load."""
    path = str(path)
    if '://' in path:
        from mmengine.runner.checkpoint import CheckpointLoader
        patch_mmengine_checkpoint_loading()
        ckpt = CheckpointLoader.load_checkpoint(path, map_location=map_location)
    else:
        ckpt = load_from_local(path, map_location)
    if not isinstance(ckpt, dict):
        raise TypeError(f'{path} holds a {type(ckpt).__name__}, not a checkpoint dict')
    return ckpt


def import_mmrazor_models():
    """Import and return ``mmrazor.models`` (1.0.0) on torch >= 2.

    Works around open-mmlab/mmrazor#632 / #652: for torch >= 1.13 its quantization
    ``backend_config`` tables import fusers torch 2 removed ("torch>=1.13 is not installed
    properly"). While ``mmrazor.models`` imports, ``mmrazor.digit_version`` reports torch as 1.12 so
    those tables are skipped; then the real function is restored wherever it was bound. Raises
    ImportError if mmrazor, joblib or mmcv is missing. Delete once an mmrazor release limits the
    tables to torch 1.13.x (done on main).
    """
    global _MMRAZOR_MODELS
    if _MMRAZOR_MODELS is not None:
        return _MMRAZOR_MODELS
    try:
        import joblib  # noqa: F401  (used by mmrazor.models, not declared by mmrazor)
        import mmrazor  # asserts mmcv <= 2.1.0, so mmcv must be importable
    except ImportError as err:
        raise ImportError(
            f'mmrazor KD parts need mmrazor 1.0.0, joblib and mmcv 2.1.0 ({err}): '
            'pip install mmrazor==1.0.0 joblib (mmcv: bash tools/setup_env.sh)') from err
    real = mmrazor.digit_version
    if 'mmrazor.models' in sys.modules or real(torch.__version__) < real('2.0.0'):
        _MMRAZOR_MODELS = importlib.import_module('mmrazor.models')  # nothing to work around
        return _MMRAZOR_MODELS

    def fake(version, *args, **kwargs):  # reports torch as 1.12
        return real('1.12.0' if version == torch.__version__ else version, *args, **kwargs)

    mmrazor.digit_version = fake
    try:
        _MMRAZOR_MODELS = importlib.import_module('mmrazor.models')
    finally:
        for name, module in list(sys.modules.items()):
            if name.split('.')[0] == 'mmrazor' and getattr(module, 'digit_version', 0) is fake:
                module.digit_version = real
    return _MMRAZOR_MODELS


def _init_dist_pytorch_cpu(backend, init_backend='torch', **kwargs):
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    if (torch.cuda.is_available() or init_backend != 'torch' or is_mlu_available()
            or is_npu_available() or is_musa_available()):
        return _init_dist_pytorch_cpu.wrapped(backend, init_backend=init_backend, **kwargs)
    torch.distributed.init_process_group(backend='gloo' if backend == 'nccl' else backend, **kwargs)


def patch_mmengine_cpu_distributed():
    """Let mmengine's ``pytorch`` launcher (torchrun) initialise without CUDA.

    mmengine 0.10.7 ``dist.utils._init_dist_pytorch`` always calls ``torch.cuda.set_device``, which
    raises on CPU torch. Without CUDA/MLU/NPU/MUSA the replacement skips it and uses gloo (``nccl``
    becomes ``gloo``); otherwise it calls the original. torch is not patched. Delete once an
    mmengine release skips ``set_device`` without CUDA. Pair with :func:`cpu_distributed_cfg`.
    """
    from mmengine.dist import utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, 'wrapped', None) is None:
        _init_dist_pytorch_cpu.wrapped = dist_utils._init_dist_pytorch
        dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu


def cpu_distributed_cfg(cfg, launcher=None):
    """Adapt a config (``Config`` or dict, changed in place and returned) to multi-process CPU.

    The Runner gives DDP ``device_ids=[LOCAL_RANK]``, which CPU modules reject. When CUDA is absent
    and ``launcher`` (default ``cfg.launcher``) is not ``'none'``: ``env_cfg.dist_cfg.backend`` =
    ``'gloo'`` (``mpi`` kept) and ``model_wrapper_cfg`` (type/options kept) ``device_ids=None``.
    """
    launcher = cfg.get('launcher', 'none') if launcher is None else launcher
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {})
    if dist_cfg.get('backend') not in ('gloo', 'mpi'):
        dist_cfg['backend'] = 'gloo'
    cfg['env_cfg'] = env_cfg
    wrapper = dict(
        cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False)))
    cfg['model_wrapper_cfg'] = dict(wrapper, device_ids=None)
    return cfg


def check_environment():
    """Cheap stack check; raises ``RuntimeError`` listing every problem. mmengine 0.10.7 needs
    ``pkg_resources`` (gone in setuptools 82; drop that check once a release has mmengine PR#1676),
    mmdet needs mmcv's compiled ops, and a torchvision that fails to import breaks mmdet."""
    problems = []
    if importlib.util.find_spec('pkg_resources') is None:
        problems.append('pkg_resources is missing (mmengine 0.10.7 needs it): '
                        'pip install "setuptools<82"')
    try:
        importlib.import_module('mmcv._ext')  # the compiled ops behind mmcv.ops / mmdet.models
    except Exception as err:  # noqa: BLE001 - ImportError, or an ABI error from the .so
        problems.append(f'mmcv with compiled ops does not import ({err}): bash tools/setup_env.sh')
    if importlib.util.find_spec('torchvision') is not None:
        try:
            importlib.import_module('torchvision')
        except Exception as err:  # noqa: BLE001
            problems.append(f'torchvision import fails ({err!r}); it is not needed: '
                            'pip uninstall torchvision')
    if problems:
        raise RuntimeError('mmkd_det environment problems:\n  - ' + '\n  - '.join(problems))


def patch_mmengine_external_configs():
    """Let mmengine resolve ``mmkd_det::<folder>/<file>.py`` (in ``_base_`` and in
    ``mmengine.hub.get_config``) as it resolves ``mmdet::...``.

    mmengine 0.10.7 accepts only the packages of its ``MODULE2PACKAGE`` table
    (``_get_package_and_cfg_path`` asserts it), and finds a package's ``.mim``
    under its distribution's location, which for a PEP 660 editable install
    (tools/setup_env.sh) is site-packages, not the checkout. Adds mmkd_det to the
    table and answers ``get_installed_path('mmkd_det')`` with the imported
    package's directory (the same path for a regular install). Delete once an
    mmengine release lets other packages register (none does up to 0.10.7).
    """
    import mmengine.hub  # noqa: F401  (loads mmengine.hub.hub, which keeps its own name)
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils
    config_utils.MODULE2PACKAGE.setdefault('mmkd_det', 'mmkd_det')
    original = config_module.get_installed_path
    if getattr(original, 'mmkd_det_patched', False):
        return

    def get_installed_path(package: str) -> str:
        if package == 'mmkd_det':
            return os.path.dirname(os.path.abspath(__file__))  # this file is in mmkd_det/
        return original(package)

    get_installed_path.mmkd_det_patched = True
    config_module.get_installed_path = get_installed_path
    sys.modules['mmengine.hub.hub'].get_installed_path = get_installed_path


def apply_patches():
    """Apply the mmengine patches (checkpoint loading, CPU distributed launch,
    ``mmkd_det::`` configs). Idempotent."""
    patch_mmengine_checkpoint_loading()
    patch_mmengine_cpu_distributed()
    patch_mmengine_external_configs()
