"""Tests of mmkd_det.compat: each shim has a test proving the upstream breakage and the fix.

Checks that need "no patch applied" run before ``mmkd_det`` is imported in a subprocess, or call
the original upstream function directly, because importing ``mmkd_det`` may apply the patches.
"""
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmkd_det import compat
from tests.conftest import ROOT, free_port

TORCH_GE_26 = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]) >= (2, 6)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs).squeeze(-1)
        if mode == 'loss':
            labels = torch.stack(labels) if isinstance(labels, list) else labels
            return dict(loss=((out - labels) ** 2).mean())
        return out


class ToyDataset(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(2, generator=g), labels=torch.randn((), generator=g))


class RecordHook(Hook):
    """Records the iteration of each training step and the weights at ``before_train``."""

    def __init__(self):
        self.iters, self.start_weight = [], None

    def before_train(self, runner):
        self.start_weight = runner.model.linear.weight.detach().clone()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


class Opaque:
    """A custom class: never allow-listed, so loading it needs the MMKD_DET_UNSAFE_LOAD opt-in."""


def runner_cfg(work_dir, max_iters=2, **kwargs):
    return dict(
        model=ToyModel(), work_dir=str(work_dir), default_scope='mmengine',
        experiment_name=f'{os.path.basename(work_dir)}_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(dataset=ToyDataset(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1000),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        **kwargs)


@pytest.fixture(scope='module')
def runner_ckpt(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    Runner(**runner_cfg(work_dir)).train()
    path = work_dir / 'iter_2.pth'
    assert path.is_file()
    return path


def run_py(code, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(__file__)]))
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout)


# --------------------------------------------------------------- checkpoint loading (mmengine#1655)
@pytest.mark.skipif(not TORCH_GE_26, reason='torch < 2.6 still defaults to weights_only=False')
def test_runner_checkpoint_breaks_plain_torch_load(runner_ckpt):
    import mmengine.runner.checkpoint as ckpt_mod
    with pytest.raises(pickle.UnpicklingError):
        torch.load(runner_ckpt)
    with pytest.raises(pickle.UnpicklingError):  # mmengine's own (unpatched) local loader
        ckpt_mod.load_from_local(str(runner_ckpt), map_location='cpu')


def test_patched_loader_uses_weights_only_allow_list(runner_ckpt, monkeypatch):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    logs = []
    monkeypatch.setattr(compat, 'print_log', lambda *a, **k: logs.append(a[0]))
    compat.apply_patches()
    compat.apply_patches()  # idempotent
    assert CheckpointLoader._schemes[''] is compat.load_from_local
    ckpt = _load_checkpoint(str(runner_ckpt), map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert logs == []  # no opt-in, no warning: a runner checkpoint is allow-listed
    assert set(compat.load_checkpoint_file(runner_ckpt)) >= {'state_dict', 'optimizer', 'meta'}
    with pytest.raises(pickle.UnpicklingError):  # the getattr stand-in stays narrow
        compat._history_buffer_getattr(HistoryBuffer, '__init__')


def test_checkpoint_written_with_numpy_1_names(runner_ckpt, tmp_path, monkeypatch):
    """numpy 1.x pickles ``numpy.core.multiarray.*``; numpy 2 ``numpy._core.multiarray.*``."""
    path = tmp_path / 'numpy1.pth'
    with zipfile.ZipFile(runner_ckpt) as src, zipfile.ZipFile(path, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('data.pkl'):
                data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
            dst.writestr(info, data)
    logs = []
    monkeypatch.setattr(compat, 'print_log', lambda *a, **k: logs.append(a[0]))
    assert compat.load_checkpoint_file(path)['meta']['iter'] == 2 and logs == []


def test_runner_resume_and_load_from(runner_ckpt, tmp_path):
    compat.apply_patches()
    saved = compat.load_checkpoint_file(runner_ckpt)['state_dict']['linear.weight']
    resume_dir = tmp_path / 'resume'
    shutil.copytree(runner_ckpt.parent, resume_dir)
    with open(resume_dir / 'last_checkpoint', 'w') as f:
        f.write(str(resume_dir / 'iter_2.pth'))
    hook = RecordHook()
    runner = Runner(**runner_cfg(resume_dir, max_iters=3, resume=True, custom_hooks=[hook]))
    runner.train()
    assert hook.iters == [2] and runner.iter == 3  # continued from the saved iteration
    assert torch.equal(hook.start_weight, saved)

    hook = RecordHook()
    runner = Runner(**runner_cfg(tmp_path / 'load_from', max_iters=1, load_from=str(runner_ckpt),
                                 custom_hooks=[hook]))
    runner.train()
    assert hook.iters == [0] and torch.equal(hook.start_weight, saved)


def test_custom_object_refused_unless_opted_in(tmp_path, monkeypatch):
    path = tmp_path / 'custom.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), extra=Opaque()), path)
    logs = []
    monkeypatch.setattr(compat, 'print_log', lambda *a, **k: logs.append(a[0]))
    monkeypatch.delenv(compat.UNSAFE_LOAD_ENV, raising=False)
    with pytest.raises(compat.CheckpointError) as err:
        compat.load_checkpoint_file(path, key='teacher_ckpt')
    msg = str(err.value)
    assert msg.startswith(f'teacher_ckpt {str(path)!r} holds objects a weights-only load refuses')
    assert 'test_compat.Opaque' in msg and 'MMKD_DET_UNSAFE_LOAD=1' in msg and logs == []
    monkeypatch.setenv(compat.UNSAFE_LOAD_ENV, '1')
    ckpt = compat.load_checkpoint_file(path)
    assert isinstance(ckpt['extra'], Opaque) and torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    assert len(logs) == 1 and str(path) in logs[0] and 'weights_only=False' in logs[0]


class WritesMarker:
    """Unpickling this runs ``open(path, 'w')``: stands for any code a pickle can execute."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.parametrize('scheme', ['local', 'http'])
def test_code_executing_pickle_is_refused(scheme, tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=WritesMarker(marker)), path)
    monkeypatch.delenv(compat.UNSAFE_LOAD_ENV, raising=False)
    compat.apply_patches()
    if scheme == 'http':  # torch.hub's cache stands for the download (no network needed)
        monkeypatch.setenv('TORCH_HOME', str(tmp_path))
        cache = tmp_path / 'hub' / 'checkpoints'
        cache.mkdir(parents=True)
        shutil.copy(path, cache / 'evil.pth')
        name = 'https://example.invalid/zoo/evil.pth'
    else:
        name = str(path)
    with pytest.raises(compat.CheckpointError, match='io.open.*MMKD_DET_UNSAFE_LOAD=1'):
        CheckpointLoader.load_checkpoint(name, map_location='cpu')  # as load_from / resume do
    assert not marker.exists()
    monkeypatch.setenv(compat.UNSAFE_LOAD_ENV, '1')
    assert torch.equal(compat.load_checkpoint_file(name)['state_dict']['w'], torch.ones(2))
    assert marker.exists()  # the opt-in really unpickles fully
    marker.unlink()


def _bad_files(tmp_path, good):
    data = good.read_bytes()
    flipped = bytearray(data)
    for i in range(200, 600):
        flipped[i] ^= 0x5A
    files = dict(empty=b'', truncated=data[:len(data) // 2], corrupt=bytes(flipped),
                 text=b'{"images": []}\n', raw_pickle=pickle.dumps(dict(a=1)))
    for name, content in files.items():
        (tmp_path / f'{name}.pth').write_bytes(content)
    torch.save([1, 2], tmp_path / 'list.pth')
    return [*files, 'list']


@pytest.mark.parametrize('opt_in', [False, True])
def test_unreadable_files_give_one_error_naming_key_and_path(runner_ckpt, tmp_path, monkeypatch,
                                                             opt_in):
    if opt_in:
        monkeypatch.setenv(compat.UNSAFE_LOAD_ENV, '1')
    else:
        monkeypatch.delenv(compat.UNSAFE_LOAD_ENV, raising=False)
    expected = dict(empty='is an empty file', truncated='is not a readable PyTorch checkpoint',
                    corrupt='is not a readable PyTorch checkpoint',
                    text='is not a readable PyTorch checkpoint',
                    raw_pickle='is not a readable PyTorch checkpoint',
                    list='holds a list, not a checkpoint dict')
    names = _bad_files(tmp_path, runner_ckpt)
    assert sorted(names) == sorted(expected)
    for name in names:
        path = str(tmp_path / f'{name}.pth')
        for key in ('teacher_ckpt', 'load_from', 'resume'):
            with pytest.raises(compat.CheckpointError) as err:
                compat.load_checkpoint_file(path, key=key)
            assert str(err.value).startswith(f'{key} {path!r} {expected[name]}'), str(err.value)
    with pytest.raises(FileNotFoundError, match="resume '/nope.pth' can not be found"):
        compat.load_checkpoint_file('/nope.pth', key='resume')


def test_checkpoint_state_dict(tmp_path):
    weights = dict(w=torch.ones(2))
    assert compat.checkpoint_state_dict(dict(state_dict=weights, meta={}), 'a.pth') is weights
    assert compat.checkpoint_state_dict(weights, 'a.pth') is weights  # a bare state dict
    for bad in (dict(meta=dict(epoch=1)), dict(state_dict={}), dict(state_dict=dict(w=[1.0]))):
        with pytest.raises(compat.CheckpointError,
                           match=r"^load_from 'a.pth' holds no state dict: its top level has"):
            compat.checkpoint_state_dict(bad, 'a.pth', key='load_from')


def test_mmengine_http_loader_from_local_cache(runner_ckpt, tmp_path):
    """Upstream behaviour, no patch involved: torch.hub's loader passes weights_only=False."""
    from mmengine.runner.checkpoint import load_from_http
    shutil.copy(runner_ckpt, tmp_path / 'iter_2.pth')
    ckpt = load_from_http('http://example.invalid/ckpts/iter_2.pth', map_location='cpu',
                          model_dir=str(tmp_path), progress=False)
    assert ckpt['meta']['iter'] == 2


# ------------------------------------------------------------- CPU distributed launch (torchrun)
@pytest.mark.skipif(torch.cuda.is_available(), reason='the breakage only exists without CUDA')
def test_init_dist_pytorch_without_cuda(tmp_path):
    env = dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()), RANK='0', WORLD_SIZE='1',
               LOCAL_RANK='0')
    proc = run_py(f"""
        import os; os.environ.update({env!r})
        import torch.distributed as td
        from mmengine.dist import init_dist
        from mmengine.runner import Runner
        try:
            init_dist('pytorch', backend='gloo')
            raise SystemExit('unpatched init_dist unexpectedly worked')
        except (AttributeError, AssertionError, RuntimeError) as err:
            print('UNPATCHED', type(err).__name__)
        assert not td.is_initialized()
        from mmkd_det import compat
        from test_compat import runner_cfg
        compat.apply_patches()
        init_dist('pytorch', backend='nccl')  # nccl is mapped to gloo without CUDA
        print('BACKEND', td.get_backend())
        try:  # the Runner's default DDP wrapper passes device_ids=[LOCAL_RANK]
            Runner(**runner_cfg({str(tmp_path / 'a')!r}, max_iters=1, launcher='pytorch'))
            raise SystemExit('default DDP wrapper unexpectedly worked on CPU')
        except ValueError as err:
            print('DEFAULT_WRAPPER', err)
        cfg = compat.cpu_distributed_cfg(runner_cfg({str(tmp_path / 'b')!r}, max_iters=1,
                                                    launcher='pytorch'))
        wrapper = cfg.pop('model_wrapper_cfg')  # Runner reads it from its ``cfg`` argument
        runner = Runner(**cfg, cfg=dict(model_wrapper_cfg=wrapper))
        runner.train()
        print('TRAINED', runner.iter, type(runner.model).__name__)
        td.destroy_process_group()
    """)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert 'UNPATCHED AttributeError' in proc.stdout  # torch.cuda.set_device on CPU torch
    assert 'BACKEND gloo' in proc.stdout
    assert 'DEFAULT_WRAPPER' in proc.stdout
    assert 'TRAINED 1 MMDistributedDataParallel' in proc.stdout


def test_cpu_distributed_cfg(monkeypatch):
    from mmengine import Config
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = compat.cpu_distributed_cfg(Config(dict(find_unused_parameters=True)), launcher='pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=True)
    cfg = Config(dict(launcher='slurm', env_cfg=dict(cudnn_benchmark=False,
                                                     dist_cfg=dict(backend='nccl', timeout=60)),
                      model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel',
                                             device_ids=[0], find_unused_parameters=True)))
    compat.cpu_distributed_cfg(cfg)
    assert cfg.env_cfg == dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo', timeout=60))
    assert cfg.model_wrapper_cfg == dict(type='MMSeparateDistributedDataParallel', device_ids=None,
                                         find_unused_parameters=True)
    plain = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert compat.cpu_distributed_cfg(plain).env_cfg.dist_cfg.backend == 'nccl'  # launcher none
    assert 'model_wrapper_cfg' not in plain


# ------------------------------------------------------------------ mmrazor 1.0.0 (#632 / #652)
needs_mmrazor = pytest.mark.skipif(
    importlib.util.find_spec('mmrazor') is None or importlib.util.find_spec('mmcv') is None,
    reason='mmrazor 1.0.0 and mmcv 2.1.0 are needed')


@needs_mmrazor
@pytest.mark.skipif(torch.__version__ < '2', reason='the breakage only exists on torch >= 2')
def test_import_mmrazor_models_confined():
    # One interpreter (imports are slow): a plain import fails, then the confined fix recovers.
    proc = run_py("""
        import sys, torch
        try:
            import mmrazor.models
            raise SystemExit('plain import mmrazor.models unexpectedly worked')
        except ImportError as err:
            print('PLAIN', err)
        import mmrazor
        from mmengine.utils import digit_version
        from mmkd_det import compat
        models = compat.import_mmrazor_models()
        assert compat.import_mmrazor_models() is models is sys.modules['mmrazor.models']
        leaked = [n for n, m in sys.modules.items() if n.startswith('mmrazor')
                  and hasattr(m, 'digit_version') and m.digit_version is not digit_version]
        assert mmrazor.digit_version is digit_version and not leaked, leaked
        import mmrazor.engine  # noqa: F401  (imports once mmrazor.models is loaded)
        from mmrazor.models.losses import ChannelWiseDivergence, PKDLoss
        s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
        for loss in (PKDLoss(loss_weight=1.0)(s, t), ChannelWiseDivergence(tau=1.0)(s, t)):
            assert torch.isfinite(loss).all(), loss
        print('OK')
    """)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stdout + proc.stderr[-4000:]
    assert 'PLAIN `torch>=1.13` is not installed properly' in proc.stdout, proc.stdout


def test_import_mmrazor_models_names_the_fix(monkeypatch):
    monkeypatch.setattr(compat, '_MMRAZOR_MODELS', None)
    monkeypatch.setitem(sys.modules, 'joblib', None)
    with pytest.raises(ImportError, match=r'pip install mmrazor==1\.0\.0 joblib'):
        compat.import_mmrazor_models()


# ---------------------------------------------------------------------------- check_environment
class _BrokenTorchvisionFinder:
    """Finds a ``torchvision`` whose import raises, like a CUDA wheel on CPU torch."""

    def find_spec(self, name, path=None, target=None):
        if name == 'torchvision':
            return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError('operator torchvision::nms does not exist')


def test_check_environment_reports_each_problem(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pkg_resources', None)  # as with setuptools >= 82
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # as with mmcv-lite / no ops
    monkeypatch.delitem(sys.modules, 'torchvision', raising=False)
    monkeypatch.setattr(sys, 'meta_path', [_BrokenTorchvisionFinder()] + sys.meta_path)
    with pytest.raises(RuntimeError) as info:
        compat.check_environment()
    msg = str(info.value)
    assert 'pip install "setuptools<82"' in msg and 'bash tools/setup_env.sh' in msg
    assert 'pip uninstall torchvision' in msg


@pytest.mark.skipif(importlib.util.find_spec('mmcv') is None, reason='mmcv is not installed yet')
def test_check_environment_passes_here():
    compat.check_environment()
