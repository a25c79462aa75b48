"""Record the outputs of named sub-modules of a detector during one forward.

Shape shorthand used across mmkd_det: ``N`` images, ``C`` channels, ``H, W`` one
FPN level, ``L`` FPN levels.
"""
from typing import Dict, List

import torch
from torch import nn

from mmkd_det.registry import suggestion


class RecordError(RuntimeError):
    """Raised when a record is requested that was not (or wrongly) captured."""


def find_module(model: nn.Module, path: str, model_name: str = 'model') -> nn.Module:
    """Return ``model``'s sub-module at dotted ``path`` or raise with suggestions."""
    modules = dict(model.named_modules())
    # Accept paths written against a DDP-wrapped or distiller-wrapped model.
    for prefix in ('module.', 'student.', 'teacher.'):
        if path not in modules and path.startswith(prefix):
            path = path[len(prefix):]
    if path not in modules:
        raise KeyError(f'Unknown recorded module {path!r} in the {model_name} '
                       f'({type(model).__name__}). '
                       f'Close names: {suggestion(path, [n for n in modules if n])}. '
                       f'Fix the `source` of this recorder in the config '
                       f'(print the {model_name} to list its module names).')
    return modules[path]


class ModuleOutputsRecorder:
    """Capture the outputs of several named modules of one model.

    Forward hooks are registered once, with removable handles (:meth:`remove`),
    and only store outputs while the recorder is active (``with recorder:``).
    Buffers are cleared on every ``__enter__``, so records never leak across
    iterations. A module called several times in one forward (a head shared
    across FPN levels) yields one record per call.

    Each recorded tensor's version counter is kept with it: a record changed
    in place after it was captured (by an inplace activation the model applies
    to that module's output) is reported by :meth:`modified` and refused by
    :meth:`get`, instead of handing the loss the overwritten values.

    Args:
        model (nn.Module): the detector (teacher or student).
        sources (dict[str, dict]): record name -> ``dict(source='dotted.path',
            index=None, levels=None)``. ``index`` picks one element of a tuple
            output (e.g. ``index=0`` for the classification scores of a head
            forward); ``levels`` keeps those levels of the result (e.g.
            ``levels=[0, 1, 2, 3]``: the first four FPN levels, as mmrazor's
            PKD and FBKD configs).
        model_name (str): used in error messages.
    """

    def __init__(self, model: nn.Module, sources: Dict[str, dict], model_name: str = 'model'):
        self.model_name = model_name
        self.specs = {k: dict(v) for k, v in sources.items()}
        self._buffers: Dict[str, List] = {k: [] for k in sources}
        self._versions: Dict[str, List[tuple]] = {k: [] for k in sources}
        self._overwritten: set = set()  # found modified before make_contiguous copied them
        self._active = False
        self._handles = []
        self._model = model
        self._hooked: Dict[str, tuple] = {}  # record name -> (module path, hooked module)
        for name, spec in self.specs.items():
            if 'source' not in spec:
                raise KeyError(f'Recorder {name!r} needs a `source` (dotted module '
                               f'path), got {spec}.')
            unknown = set(spec) - {'source', 'index', 'teacher_source', 'levels', 'teacher_levels'}
            if unknown:
                raise KeyError(f'Recorder {name!r} has unknown keys {sorted(unknown)}; '
                               f'allowed: source, teacher_source, index, levels, teacher_levels.')
        self._hook_all()

    def _hook_all(self) -> None:
        """Hook the module at every record's source, as the model holds it now."""
        self.remove()
        names = {id(m): n for n, m in self._model.named_modules()}
        for name, spec in self.specs.items():
            module = find_module(self._model, spec['source'], self.model_name)
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
            self._hooked[name] = (names[id(module)].split('.'), module)

    def _rehook_if_replaced(self) -> None:
        """Hook again if a recorded module was replaced since it was hooked (mmengine's
        ``revert_sync_batchnorm`` / ``convert_sync_batchnorm`` swap BN modules); a walk
        of each dotted path, no module search."""
        for parts, module in self._hooked.values():
            current = self._model
            for part in parts:
                current = current._modules.get(part) if current is not None else None
            if current is not module:
                self._hook_all()
                return

    def _make_hook(self, name: str):

        def hook(module, inputs, output):
            if self._active:
                self._buffers[name].append(output)
                self._versions[name].append(_versions(output))

        return hook

    def __enter__(self) -> 'ModuleOutputsRecorder':
        self.reset()
        self._rehook_if_replaced()
        self._active = True
        return self

    def __exit__(self, *exc) -> None:
        self._active = False

    def reset(self) -> None:
        for buf in self._buffers.values():
            buf.clear()
        for ver in self._versions.values():
            ver.clear()
        self._overwritten.clear()

    def _is_modified(self, name: str) -> bool:
        return name in self._overwritten or \
            [_versions(c) for c in self._buffers[name]] != self._versions[name]

    def modified(self) -> List[str]:
        """Names of the records changed in place since they were captured."""
        return [name for name in self._buffers if self._is_modified(name)]

    def make_contiguous(self) -> None:
        """Give every recorded tensor (in tuples and lists too) the contiguous
        layout (e.g. after a channels-last forward); already contiguous ones
        are kept as they are."""

        def convert(obj):
            if isinstance(obj, torch.Tensor):
                return obj.contiguous()
            if isinstance(obj, (tuple, list)):
                items = [convert(o) for o in obj]
                return type(obj)(*items) if hasattr(obj, '_fields') else type(obj)(items)
            return obj

        for name, buf in self._buffers.items():
            if self._is_modified(name):
                self._overwritten.add(name)
            buf[:] = [convert(call) for call in buf]
            self._versions[name] = [_versions(c) for c in buf]

    def remove(self) -> None:
        """Remove every hook from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def num_calls(self, name: str) -> int:
        return len(self._buffers[name])

    def get(self, name: str) -> List[torch.Tensor]:
        """Return the record ``name`` as a list of per-level tensors.

        One call with a tuple/list output (a neck, a head forward) gives that
        sequence (element ``index`` of it first, when set); several calls (a
        conv shared across levels) give one entry per call.
        """
        if name not in self._buffers:
            raise RecordError(f'No recorder named {name!r} on the {self.model_name}; '
                              f'defined: {sorted(self._buffers)}.')
        calls = self._buffers[name]
        spec = self.specs[name]
        if not calls:
            raise RecordError(
                f'Recorder {name!r} captured nothing: module {spec["source"]!r} of the '
                f'{self.model_name} did not run in this forward, so the distillation '
                f'loss would silently be zero. Record a module on the executed path '
                f'(e.g. the neck, or the head for head outputs).')
        if self._is_modified(name):
            raise RecordError(
                f'Record {name!r} of the {self.model_name} ({spec["source"]!r}) was changed in '
                f'place after it was recorded (an inplace operation, e.g. ReLU(inplace=True), '
                f'runs on that module\'s output), so the loss would read the overwritten '
                f'values. Build the Distiller with inplace_activations=\'disable\', or record '
                f'a module whose output the model does not modify.')
        index = spec.get('index')
        if len(calls) == 1 and isinstance(calls[0], (tuple, list)):
            out = calls[0] if index is None else calls[0][index]
            out = list(out) if isinstance(out, (tuple, list)) else [out]
        else:
            out = [c if index is None else c[index] for c in calls]
        levels = spec.get('levels')
        if levels is not None:
            bad = [lvl for lvl in levels if not -len(out) <= lvl < len(out)]
            if bad:
                shapes = ', '.join(f'{i}: {_chw(t)}' for i, t in enumerate(out))
                raise RecordError(
                    f'Recorder {name!r}: levels {bad} out of range; the {self.model_name} '
                    f'output of {spec["source"]!r} has {len(out)} levels, (C, H, W) per '
                    f'index: {shapes}. Fix the recorder\'s `levels` (student side) or '
                    f'`teacher_levels` (teacher side) to indices of these levels; levels of '
                    f'equal H, W have equal strides.')
            out = [out[lvl] for lvl in levels]
        for i, t in enumerate(out):
            if not isinstance(t, torch.Tensor):
                raise RecordError(
                    f'Recorder {name!r} level {i} is a {type(t).__name__}, not a tensor; '
                    f'set `index` to select a tensor element of the output.')
        return out


def _chw(obj) -> str:
    """``(C, H, W)`` of a recorded (N, C, H, W) tensor, else its type or shape."""
    if isinstance(obj, torch.Tensor):
        return str(tuple(obj.shape[1:]))
    return type(obj).__name__


def _versions(obj) -> tuple:
    """Version counters of the tensors in ``obj`` (nested tuples and lists)."""
    if isinstance(obj, torch.Tensor):
        return (obj._version, )
    if isinstance(obj, (tuple, list)):
        return tuple(v for o in obj for v in _versions(o))
    return ()


def disable_inplace(model: nn.Module) -> int:
    """Set every ``inplace`` flag (ReLU, Dropout, ...) in ``model`` to False.

    An inplace activation after a recorded module would overwrite the recorded
    tensor. Returns the number of modules changed.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, 'inplace', False) is True:
            module.inplace = False
            changed += 1
        act_cfg = getattr(module, 'act_cfg', None)
        if isinstance(act_cfg, dict) and act_cfg.get('inplace'):
            act_cfg['inplace'] = False
    return changed
