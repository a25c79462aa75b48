"""Confined compatibility shims for the pinned stack (torch >= 2.6, mmengine 0.10.7, mmrazor 1.0.0).

Every shim replaces exactly one upstream name, is idempotent, and says which upstream issue it
works around and when it can be deleted. Importing this module imports neither mmcv.ops nor
mmdet.models (mmengine only), so ``mmkd_det/__init__.py`` may call :func:`apply_patches` early.
"""
import importlib
import importlib.util
import logging
import os
import pickle
import sys

import torch
from mmengine.logging import print_log

__all__ = ['apply_patches', 'check_environment', 'cpu_distributed_cfg', 'import_mmrazor_models',
           'load_checkpoint_file', 'patch_mmengine_checkpoint_loading',
           'patch_mmengine_cpu_distributed']

_FALLBACK_WARNED = set()
_MMRAZOR_MODELS = None
_HISTORY_BUFFER_STATS = ('min', 'max', 'mean', 'current')


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` during weights-only unpickling, limited to what runner
    checkpoints pickle: ``HistoryBuffer._statistics_methods`` as ``getattr(HistoryBuffer, 'min')``."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allow-listed')


def _runner_checkpoint_safe_globals():
    """The globals an mmengine Runner checkpoint needs (``message_hub`` and numpy scalars/arrays)."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    entries = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_getattr, 'builtins.getattr')]
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # written by numpy 1.x / 2.x
        entries += [(multiarray._reconstruct, f'{mod}._reconstruct'),
                    (multiarray.scalar, f'{mod}.scalar')]
    # dtype instances are rebuilt by BUILD on their per-dtype class; numeric/bool kinds only.
    entries += sorted({type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDG'}, key=str)
    return entries


def _torch_load(filename, map_location=None):
    if not hasattr(torch.serialization, 'safe_globals'):  # torch < 2.5: weights_only not default
        return torch.load(filename, map_location=map_location)
    try:
        with torch.serialization.safe_globals(_runner_checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()[-1][:200]
    if filename not in _FALLBACK_WARNED:
        _FALLBACK_WARNED.add(filename)
        print_log(f'{filename} loaded with weights_only=False ({reason}); only load checkpoints '
                  'you trust.', logger='current', level=logging.WARNING)
    return torch.load(filename, map_location=map_location, weights_only=False)


def load_from_local(filename, map_location=None):
    """mmengine's ``''`` (local file) checkpoint scheme, loading runner checkpoints on torch >= 2.6.

    Same contract as ``mmengine.runner.checkpoint.load_from_local`` (the name keeps mmengine's
    "Loads checkpoint by local backend" log line).
    """
    filename = os.path.expanduser(str(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return _torch_load(filename, map_location)


def patch_mmengine_checkpoint_loading():
    """Make mmengine load its own runner checkpoints under torch >= 2.6 (``weights_only`` default).

    Works around open-mmlab/mmengine#1655: 0.10.7's ``load_from_local`` calls ``torch.load``
    without ``weights_only``, so ``resume=True``, ``load_from=`` and a user's own teacher
    checkpoint fail on ``HistoryBuffer`` / numpy objects. Re-registers the ``''`` scheme with
    :func:`load_from_local`: ``weights_only=True`` plus the narrow allow-list above, falling back to
    ``weights_only=False`` with a warning per file. ``http(s)://`` needs nothing: mmengine's
    ``load_from_http`` uses ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` still
    defaults to False. Delete once an mmengine release contains the fix on main (#1670).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def load_checkpoint_file(path, map_location='cpu'):
    """Read a checkpoint dict (teacher weights, student export) with the logic above.

    Args:
        path (str | os.PathLike): local file, or any mmengine scheme (``http://``, ``openmmlab://``...).
        map_location: as in :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        dict: the checkpoint.
    """
    path = str(path)
    if '://' in path:
        from mmengine.runner.checkpoint import CheckpointLoader
        patch_mmengine_checkpoint_loading()
        ckpt = CheckpointLoader.load_checkpoint(path, map_location=map_location)
    else:
        ckpt = load_from_local(path, map_location)
    if not isinstance(ckpt, dict):
        raise TypeError(f'{path} holds a {type(ckpt).__name__}, expected a checkpoint dict')
    return ckpt


def import_mmrazor_models():
    """Import and return ``mmrazor.models`` (1.0.0) on torch >= 2.

    Works around open-mmlab/mmrazor#632 / #652: for torch >= 1.13 its quantization
    ``backend_config`` tables import fusers that torch 2 removed ("torch>=1.13 is not installed
    properly"). Only while ``mmrazor.models`` is imported, ``mmrazor.digit_version`` reports torch
    as 1.12 so those tables are skipped; afterwards the real function is restored everywhere it was
    bound. Delete once an mmrazor release restricts the tables to torch 1.13.x (done on main).

    Raises:
        ImportError: mmrazor, joblib or mmcv is missing.
    """
    global _MMRAZOR_MODELS
    if _MMRAZOR_MODELS is not None:
        return _MMRAZOR_MODELS
    try:
        import joblib  # noqa: F401  (needed by mmrazor.models, not declared by mmrazor)
        import mmrazor  # asserts mmcv <= 2.1.0, so mmcv must be importable
    except ImportError as err:
        raise ImportError(f'mmrazor KD components need mmrazor 1.0.0, joblib and mmcv 2.1.0 ({err}): '
                          'run `pip install mmrazor==1.0.0 joblib` (mmcv: `bash tools/setup_env.sh`)'
                          ) from err
    real = mmrazor.digit_version
    if 'mmrazor.models' in sys.modules or real(torch.__version__) < real('2.0.0'):
        _MMRAZOR_MODELS = importlib.import_module('mmrazor.models')
        return _MMRAZOR_MODELS

    def torch_as_1_12(version, *args, **kwargs):
        return real('1.12.0' if version == torch.__version__ else version, *args, **kwargs)

    mmrazor.digit_version = torch_as_1_12
    try:
        _MMRAZOR_MODELS = importlib.import_module('mmrazor.models')
    finally:
        mmrazor.digit_version = real
        for name, module in list(sys.modules.items()):
            if name.startswith('mmrazor.') and getattr(module, 'digit_version', None) is torch_as_1_12:
                module.digit_version = real
    return _MMRAZOR_MODELS


def _init_dist_pytorch_cpu(backend, init_backend='torch', **kwargs):
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    if (torch.cuda.is_available() or init_backend != 'torch' or is_mlu_available()
            or is_npu_available() or is_musa_available()):
        return _init_dist_pytorch_cpu.wrapped(backend, init_backend=init_backend, **kwargs)
    torch.distributed.init_process_group(backend='gloo' if backend == 'nccl' else backend, **kwargs)


def patch_mmengine_cpu_distributed():
    """Let mmengine's ``pytorch`` launcher (torchrun) initialise on machines without CUDA.

    mmengine 0.10.7 ``dist.utils._init_dist_pytorch`` always calls ``torch.cuda.set_device``,
    which raises on CPU torch. Without CUDA (and no MLU/NPU/MUSA) the patched function skips it and
    initialises the process group with gloo (a requested ``nccl`` becomes ``gloo``); otherwise it
    calls the original. torch itself is not patched. Still needed by mmengine main as of 2025-10;
    delete once mmengine skips ``set_device`` without CUDA. Pair with :func:`cpu_distributed_cfg`.
    """
    from mmengine.dist import utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, 'wrapped', None) is None:
        _init_dist_pytorch_cpu.wrapped = dist_utils._init_dist_pytorch
        dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu


def cpu_distributed_cfg(cfg, launcher=None):
    """Adapt a config for multi-process CPU training (gloo, DDP without ``device_ids``).

    The Runner passes ``device_ids=[LOCAL_RANK]`` to DDP, which rejects CPU modules. When CUDA is
    unavailable and a launcher is used, sets ``env_cfg.dist_cfg.backend='gloo'`` (``mpi`` kept) and
    ``model_wrapper_cfg`` (existing type/options kept) with ``device_ids=None``.

    Args:
        cfg (mmengine.Config | dict): modified in place.
        launcher (str, optional): defaults to ``cfg.get('launcher', 'none')``.

    Returns:
        The same ``cfg``.
    """
    launcher = cfg.get('launcher', 'none') if launcher is None else launcher
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    env_cfg = dict(cfg.get('env_cfg') or {})
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    if dist_cfg.get('backend') not in ('gloo', 'mpi'):
        dist_cfg['backend'] = 'gloo'
    env_cfg['dist_cfg'] = dist_cfg
    cfg['env_cfg'] = env_cfg
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    wrapper['device_ids'] = None
    cfg['model_wrapper_cfg'] = wrapper
    return cfg


def check_environment():
    """Cheap sanity check of the runtime stack; raises ``RuntimeError`` listing every problem."""
    problems = []
    if importlib.util.find_spec('pkg_resources') is None:  # mmengine 0.10.7 needs it (PR#1676)
        problems.append('pkg_resources is missing (setuptools >= 82 removed it; mmengine 0.10.7 '
                        'uses it): pip install "setuptools<82"')
    try:
        importlib.import_module('mmcv._ext')  # the compiled ops that mmcv.ops / mmdet.models need
    except Exception as err:  # noqa: BLE001 - ImportError, or an ABI error from the .so
        problems.append(f'mmcv with compiled ops is not importable ({err}): bash tools/setup_env.sh')
    if importlib.util.find_spec('torchvision') is not None:
        try:
            importlib.import_module('torchvision')
        except Exception as err:  # noqa: BLE001
            problems.append(f'torchvision is installed but its import fails ({err!r}); it is not '
                            'needed: pip uninstall torchvision')
    if problems:
        raise RuntimeError('mmkd_det environment problems:\n  - ' + '\n  - '.join(problems))


def apply_patches():
    """Apply the mmengine patches (checkpoint loading, CPU distributed launch). Idempotent."""
    patch_mmengine_checkpoint_loading()
    patch_mmengine_cpu_distributed()
