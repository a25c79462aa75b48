"""Confined shims for the pinned stack (torch >= 2.6, mmengine 0.10.7, mmrazor 1.0.0).

Each shim replaces one upstream name, is idempotent, and names the upstream issue it works around
and when to delete it. Imports mmengine only (no mmcv.ops / mmdet.models), so it is safe early.
"""
import contextlib
import contextvars
import functools
import importlib
import importlib.util
import logging
import os
import pickle
import sys
from typing import Any, Callable, Optional

import torch
from mmengine.logging import print_log

__all__ = [
    'apply_patches', 'patch_mmengine_external_configs', 'check_environment', 'cpu_distributed_cfg',
    'import_mmrazor_models', 'load_checkpoint_file', 'patch_mmengine_checkpoint_loading',
    'patch_mmengine_cpu_distributed', 'CheckpointError', 'checkpoint_key', 'checkpoint_state_dict',
    'unsafe_load_allowed', 'UNSAFE_LOAD_ENV'
]
#: environment variable that allows a full (code-executing) unpickle of a refused checkpoint
UNSAFE_LOAD_ENV = 'MMKD_DET_UNSAFE_LOAD'
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


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read safely: one message naming the config key
    (``teacher_ckpt``, ``load_from``, ``resume``...), the file and the fix."""


_CHECKPOINT_KEY = contextvars.ContextVar('mmkd_det_checkpoint_key', default=None)


@contextlib.contextmanager
def checkpoint_key(key: Optional[str]):
    """Name the config key (``'load_from'``...) whose file is read inside the block; the loaders
    below put it in their errors. ``None`` keeps the key already set."""
    token = _CHECKPOINT_KEY.set(key) if key else None
    try:
        yield
    finally:
        if token is not None:
            _CHECKPOINT_KEY.reset(token)


def _source(filename, key: Optional[str] = None) -> str:
    """``<key> '<file>'`` as errors name a checkpoint (``key`` default: the one set by
    :func:`checkpoint_key`)."""
    return f'{key or _CHECKPOINT_KEY.get() or "checkpoint"} {str(filename)!r}'


def unsafe_load_allowed() -> bool:
    """Whether the user opted in to full (code-executing) unpickling: ``MMKD_DET_UNSAFE_LOAD=1``."""
    return os.environ.get(UNSAFE_LOAD_ENV, '').strip().lower() in ('1', 'true', 'yes')


def _refused_global(err: pickle.UnpicklingError) -> Optional[str]:
    """The global (class or function) torch's weights-only load refused, as its error words it;
    ``None`` if it failed for another reason (corrupt pickle data)."""
    for line in str(err).splitlines():
        if 'GLOBAL ' in line:
            return line.strip().split('. Please')[0].replace('WeightsUnpickler error: ', '')
    return None


def _error_detail(err: Exception) -> str:
    """``<type>: <the line that says what went wrong>`` of a load error."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if 'WeightsUnpickler error:' in str(err):  # torch's long weights-only preamble: skip it
        tail = str(err).split('WeightsUnpickler error:', 1)[1]
        lines = [line.strip() for line in tail.splitlines() if line.strip()] or lines
    return f'{type(err).__name__}: {lines[0].split(". ")[0]}' if lines else type(err).__name__


def _weights_only_load(load: Callable, filename) -> Any:
    """Run ``load(weights_only=...)`` (``torch.load`` or torch.hub's loader) on ``filename``.

    ``weights_only=True`` with the allow-list above; what it refuses is loaded fully only when
    :func:`unsafe_load_allowed`, with a warning; any other failure (empty, truncated, corrupt,
    not a checkpoint) becomes one :class:`CheckpointError`.
    """
    if os.path.isfile(filename) and os.path.getsize(filename) == 0:
        raise CheckpointError(f'{_source(filename)} is an empty file (0 bytes): an interrupted '
                              'save or download. Save or download it again.')
    allow_list = contextlib.nullcontext()  # torch < 2.5: weights-only with torch's own list
    if hasattr(torch.serialization, 'safe_globals'):
        allow_list = torch.serialization.safe_globals(_runner_checkpoint_safe_globals())
    try:
        with allow_list:
            return load(weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_global(err)
        if refused is None:
            raise _unreadable(filename, err) from err
    except OSError:  # download or file-system errors: the callers name them
        raise
    except Exception as err:  # noqa: BLE001 - EOFError, zip/magic-number errors... all "unreadable"
        raise _unreadable(filename, err) from err
    if not unsafe_load_allowed():
        raise CheckpointError(
            f'{_source(filename)} holds objects a weights-only load refuses ({refused}). It is '
            'not a Runner or model-zoo checkpoint, or it holds custom Python objects; unpickling '
            'it fully can run arbitrary code. Only if you trust the file, set '
            f'{UNSAFE_LOAD_ENV}=1 to load it with weights_only=False.')
    print_log(
        f'{_source(filename)} loaded with weights_only=False ({UNSAFE_LOAD_ENV}=1; '
        f'refused: {refused}).',
        logger='current',
        level=logging.WARNING)
    try:
        return load(weights_only=False)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _unreadable(filename, err) from err


def _unreadable(filename, err: Exception) -> CheckpointError:
    return CheckpointError(
        f'{_source(filename)} is not a readable PyTorch checkpoint ({_error_detail(err)}). The '
        'file is truncated or corrupt (an interrupted save or download) or not a checkpoint at '
        'all; save or download it again.')


def load_from_local(filename, map_location=None):
    """Local-file scheme with mmengine's contract (name kept for its "by local backend" log)."""
    filename = os.path.expanduser(str(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{_source(filename)} can not be found.')
    return _weights_only_load(
        functools.partial(torch.load, filename, map_location=map_location), filename)


def load_from_http(filename, map_location=None, model_dir=None, progress=os.isatty(0)):
    """``http(s)://`` scheme with mmengine's contract (rank 0 downloads first), read through
    :func:`_weights_only_load` instead of torch.hub's default full unpickle."""
    from mmengine.dist import get_dist_info
    from mmengine.utils.dl_utils import load_url

    def load(weights_only):
        return load_url(
            filename,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            weights_only=weights_only)

    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _weights_only_load(load, filename)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _weights_only_load(load, filename)
    return checkpoint


def patch_mmengine_checkpoint_loading():
    """Load checkpoints weights-only, with an allow-list of what Runner and model-zoo checkpoints
    hold, so mmengine's own runner checkpoints load under torch >= 2.6 and nothing else is
    unpickled fully without the user's opt-in.

    Works around open-mmlab/mmengine#1655: 0.10.7's ``load_from_local`` uses torch's default, so
    ``resume=True``, ``load_from=`` and a user's own teacher checkpoint fail on ``HistoryBuffer`` /
    numpy objects; and its ``load_from_http`` (torch.hub) unpickles downloads fully. Re-registers
    the ``''`` and ``http(s)://`` schemes: ``weights_only=True`` with the allow-list above; a
    refused file raises :class:`CheckpointError` unless ``MMKD_DET_UNSAFE_LOAD=1``. Delete the
    local scheme once an mmengine release has #1670 (on main); keep the http one.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    if CheckpointLoader._schemes.get('http://') is not load_from_http:
        CheckpointLoader.register_scheme(
            prefixes=('http://', 'https://'), loader=load_from_http, force=True)


def load_checkpoint_file(path, map_location='cpu', key: Optional[str] = None) -> dict:
    """Read a checkpoint dict (teacher weights, student export) safely.

    Args:
        path (str): a local file or any mmengine scheme (``http://``...).
        map_location: as in ``torch.load``.
        key (str, optional): the config key or option that named ``path`` (``'teacher_ckpt'``),
            for the errors.

    Returns:
        dict: the checkpoint.

    Raises:
        FileNotFoundError: no such local file.
        CheckpointError: the file is empty, truncated, corrupt, refused by the weights-only load
            (see :func:`patch_mmengine_checkpoint_loading`) or not a dict.
    """
    path = str(path)
    with checkpoint_key(key):
        if '://' in path:
            from mmengine.runner.checkpoint import CheckpointLoader
            patch_mmengine_checkpoint_loading()
            ckpt = CheckpointLoader.load_checkpoint(path, map_location=map_location)
        else:
            ckpt = load_from_local(path, map_location)
        if not isinstance(ckpt, dict):
            raise CheckpointError(f'{_source(path)} holds a {type(ckpt).__name__}, not a '
                                  'checkpoint dict.')
    return ckpt


def checkpoint_state_dict(checkpoint: dict, path, key: Optional[str] = None) -> dict:
    """The weights of ``checkpoint``: its ``state_dict``, or the checkpoint itself when it is a
    bare state dict (name -> tensor), as some published checkpoints are.

    Args:
        checkpoint (dict): a loaded checkpoint.
        path (str): where it was read from, for the error.
        key (str, optional): the config key that named ``path``, for the error.

    Returns:
        dict: the state dict.

    Raises:
        CheckpointError: neither (e.g. a file of results or of optimizer state alone);
            the message names ``key``, ``path`` and the top-level keys found.
    """
    state = checkpoint.get('state_dict', checkpoint)
    values = state.values() if isinstance(state, dict) else ()
    tensors = [isinstance(v, torch.Tensor) for v in values]
    # under `state_dict` some tensors suffice; a bare dict must be all tensors to be weights
    if any(tensors) and ('state_dict' in checkpoint or all(tensors)):
        return state
    raise CheckpointError(
        f'{_source(path, key)} holds no state dict: its top level has keys '
        f'{sorted(map(str, checkpoint))[:8]}, not `state_dict` or parameter tensors. Point '
        'it to a checkpoint written by training (work_dirs/<run>/epoch_N.pth) or a '
        'model-zoo .pth file.')


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
