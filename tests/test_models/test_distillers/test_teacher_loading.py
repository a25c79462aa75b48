"""teacher_ckpt: found by the path rule, read weights-only, and every bad file named."""

import pytest
import torch

from mmkd_det.compat import CheckpointError
from mmkd_det.models.distillers import model_config
from mmkd_det.models.distillers.teacher_loading import split_student, strip_module_prefix
from mmkd_det.registry import MODELS
from tests.conftest import frs_distiller_cfg, tiny_model_cfg


def build(ckpt, **kwargs):
    return MODELS.build(frs_distiller_cfg('retina', ckpt, fuse_teacher_bn=False, **kwargs))


def test_relative_teacher_ckpt_found_under_the_project_root(weights, tmp_path, monkeypatch):
    """A run started in the checkout writes work_dirs/...; the teacher is found from elsewhere."""
    ckpt = weights(tiny_model_cfg('retina', 16), 'teacher.pth')
    monkeypatch.setattr(model_config, 'project_root', lambda: str(tmp_path))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    d = build('teacher.pth')  # relative: not in the current directory, found under the root
    saved = torch.load(ckpt)['state_dict']
    assert torch.equal(d.teacher.backbone.conv1.weight, saved['backbone.conv1.weight'])


def test_missing_teacher_ckpt_lists_the_locations_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(model_config, 'project_root', lambda: str(tmp_path / 'root'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        build('work_dirs/teacher/epoch_12.pth')
    msg = str(err.value)
    assert msg.startswith("teacher_ckpt 'work_dirs/teacher/epoch_12.pth' not found. Tried:\n"
                          f'  - {tmp_path}/work_dirs/teacher/epoch_12.pth\n'
                          f'  - {tmp_path}/root/work_dirs/teacher/epoch_12.pth\n')
    assert msg.endswith('Train the teacher first (python tools/train.py <teacher config>) or '
                        'point teacher_ckpt to its checkpoint (a local path or a model-zoo URL).')


@pytest.mark.parametrize('content, message', [
    (b'', 'is an empty file (0 bytes)'),
    (b'not a checkpoint\n', 'is not a readable PyTorch checkpoint'),
])
def test_unreadable_teacher_ckpt_names_the_key(tmp_path, content, message):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        build(str(path))
    assert str(err.value).startswith(f'teacher_ckpt {str(path)!r} {message}')


def test_truncated_teacher_ckpt_names_the_key(weights, tmp_path):
    good = weights(tiny_model_cfg('retina', 16), 'good.pth')
    data = open(good, 'rb').read()
    path = tmp_path / 'truncated.pth'
    path.write_bytes(data[:len(data) // 3])
    with pytest.raises(CheckpointError, match=rf'^teacher_ckpt {str(path)!r} is not a readable '
                       r'PyTorch checkpoint \(RuntimeError: PytorchStreamReader failed'):
        build(str(path))


def test_teacher_ckpt_without_weights(tmp_path):
    path = tmp_path / 'meta_only.pth'
    torch.save(dict(meta=dict(epoch=3), optimizer=dict(state={})), path)
    with pytest.raises(CheckpointError, match=rf'^teacher_ckpt {str(path)!r} holds no state dict: '
                       r"its top level has keys \['meta', 'optimizer'\]"):
        build(str(path))


def test_teacher_ckpt_with_custom_objects_is_refused(weights, tmp_path, monkeypatch):
    monkeypatch.delenv('MMKD_DET_UNSAFE_LOAD', raising=False)
    state = torch.load(weights(tiny_model_cfg('retina', 16)))['state_dict']
    path = tmp_path / 'custom.pth'
    torch.save(dict(state_dict=state, meta=dict(cfg=CustomMeta())), path)
    with pytest.raises(CheckpointError, match=rf'^teacher_ckpt {str(path)!r} holds objects a '
                       'weights-only load refuses .*CustomMeta.*MMKD_DET_UNSAFE_LOAD=1'):
        build(str(path))
    monkeypatch.setenv('MMKD_DET_UNSAFE_LOAD', '1')
    d = build(str(path))
    assert torch.equal(d.teacher.backbone.conv1.weight, state['backbone.conv1.weight'])


class CustomMeta:
    """A user class in a checkpoint's meta: not allow-listed."""


def test_student_and_module_prefix_helpers():
    w = torch.ones(1)
    student, rest = split_student({'student.a': w, 'distill_losses.b': w, 'student.c.d': w})
    assert student == {'a': w, 'c.d': w} and rest == {'distill_losses.b': w}
    assert strip_module_prefix({'module.a': w, 'module.b': w}) == {'a': w, 'b': w}
    mixed = {'module.a': w, 'b': w}
    assert strip_module_prefix(mixed) is mixed
