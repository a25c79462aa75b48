"""Every module of a detector that the Distiller can record, with its output shapes.

For a detector the project has never seen, the first question of a new pair is
what to record: which modules exist, what they output (a tensor, a tuple of
per-level tensors, a tuple of lists), at which strides, and whether the
Distiller's ``recorders`` can capture them. :func:`recordable_rows` answers it
without weights: the detector is built from its config with random
initialisation (no checkpoint is loaded, so a missing ``teacher_ckpt`` does not
matter), put in eval mode, and a zero image runs through what the Distiller's
recorded forward runs (``extract_feat``, i.e. backbone + neck, then
``bbox_head`` / ``rpn_head`` on the neck features, as
:func:`~mmkd_det.models.distillers.teacher.record_forward`), with a forward hook
on every named module.

Per module (a row): its name, type, the shapes of its output per call (a module
called once per FPN level, like a head's shared convs, has one entry per call),
the strides of its 4-D outputs and how to record it:

* ``source='<name>'`` (with ``index=i`` when its output is a tuple of
  sequences, e.g. ``index=0`` for a dense head's classification scores), as
  :class:`~mmkd_det.models.recorders.ModuleOutputsRecorder` reads it: one call
  with a tuple / list output gives its elements as levels; several calls give
  one level per call;
* or why it cannot be: outside backbone, neck, ``bbox_head`` and ``rpn_head``
  (RoI heads need proposals, see :func:`~mmkd_det.models.distillers.records.heads_to_run`),
  not run by that forward (loss modules, an RoI head), an output that is not a
  tensor, or an output changed in place after the module returned (a residual
  ``+=`` on a norm layer's output; inplace activations are switched off first,
  as the Distiller's ``inplace_activations='auto'`` does).

Strides are measured, not guessed: the zero image runs a second time with
:data:`STRIDE_STEP` more pixels on each side, and a level whose height grows by
``dH`` has stride ``STRIDE_STEP / dH``. That is exact for strides dividing
:data:`STRIDE_STEP`, also where the input is too small for the level (a 64 px
image gives P7 a 1 x 1 map, stride 128 nonetheless).

For a Distiller config, :func:`compare_levels` compares the two detectors'
``neck`` outputs level by level (channels, stride, size) and suggests the
options that reconcile them (an ``adapter``, ``resize_student=True``, level
selection), and :func:`compare_heads` whether their dense-head outputs have
equal shapes (the condition of the head-level losses).

The command line is ``tools/analysis_tools/print_records.py``.
"""
import re
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from torch import nn

from mmkd_det.models.distillers.model_config import load_model_cfg
from mmkd_det.models.distillers.records import RUNNABLE_HEADS
from mmkd_det.models.distillers.teacher import build_detector, teacher_specs
from mmkd_det.models.recorders import disable_inplace
from mmkd_det.models.utils.level_pairing import pair_equal

#: top-level detector attributes the Distiller's recorders can record in.
RECORDABLE_PARTS = ('backbone', 'neck') + RUNNABLE_HEADS
#: extra pixels (each side) of the second zero image that measures strides.
STRIDE_STEP = 256
#: input size when the config's test pipeline names no scale.
DEFAULT_SIZE = (256, 256)
ROLES = ('student', 'teacher', 'both')


# --------------------------------------------------------------------- configs
def detector_cfgs(cfg: Config, role: str = 'both') -> Dict[str, ConfigDict]:
    """The detector model configs of ``cfg`` for ``role``.

    Args:
        cfg (Config): a Distiller config (``model.type='Distiller'``) or a
            plain mmdet detector config.
        role (str): ``'student'``, ``'teacher'`` (every teacher of a
            ``teachers=dict(...)`` config) or ``'both'``; a plain detector
            config takes only ``'both'`` (its one detector, named ``'model'``).

    Returns:
        dict: name (``'student'``, ``'teacher'`` or the teachers' names, or
        ``'model'``) -> resolved model config.

    Raises:
        ValueError: an unknown ``role``, a role a plain detector config does
            not have, a config without ``model``, or teachers the Distiller
            refuses (:func:`~mmkd_det.models.distillers.teacher.teacher_specs`).
    """
    if role not in ROLES:
        raise ValueError(f'role must be one of {ROLES}, got {role!r}.')
    model = cfg.get('model')
    if model is None:
        raise ValueError('The config defines no `model`: pass a Distiller or mmdet detector '
                         'config.')
    if model.get('type') != 'Distiller':
        if role != 'both':
            raise ValueError(f'The config is a plain detector config (model type '
                             f'{model.get("type")!r}): it has one detector, so --role '
                             f'{role} does not apply; omit --role.')
        return {'model': load_model_cfg(model, 'model')}
    out = {}
    if role in ('student', 'both'):
        out['student'] = load_model_cfg(model.student, 'student')
    if role in ('teacher', 'both'):
        # the Distiller's own reading of teacher= / teachers= (no weights are loaded)
        specs = teacher_specs(
            model.get('teacher'), model.get('teacher_ckpt'), True, model.get('teachers'))
        for name, spec in specs.items():
            out[name] = load_model_cfg(spec['model'], name)
    return out


def default_input_size(cfg: Config, model_cfg: Optional[dict] = None) -> Tuple[int, int]:
    """``(H, W)`` of the zero image: the ``scale`` of the first ``Resize`` in the
    test (else val) pipeline, ``(w, h)`` in mmdet, rounded up to the model's
    ``data_preprocessor.pad_size_divisor`` as batches are padded; else
    :data:`DEFAULT_SIZE`.

    Args:
        cfg (Config): the config whose dataloaders are read.
        model_cfg (dict, optional): the model whose data preprocessor pads.
    """
    size = None
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
        for step in dataset.get('pipeline') or []:
            scale = step.get('scale') if 'Resize' in str(step.get('type', '')) else None
            if isinstance(scale, int):
                size = (scale, scale)
            elif isinstance(scale, (tuple, list)) and len(scale) == 2 and \
                    all(isinstance(s, int) for s in scale):
                size = (scale[1], scale[0])
            if size:
                break
        if size:
            break
    if size is None:
        return DEFAULT_SIZE
    pp = (model_cfg or {}).get('data_preprocessor') or {}
    div = int(pp.get('pad_size_divisor', 1) or 1)
    return tuple(-(-s // div) * div for s in size)


def build_random_detector(model_cfg: dict, name: str) -> nn.Module:
    """The detector of ``model_cfg`` with its constructors' random weights (no
    ``init_weights``, so no pretrained backbone is fetched), in eval mode, with
    its inplace activations switched off (see the module docstring)."""
    model = build_detector(model_cfg, name)
    disable_inplace(model)
    return model.eval()


# --------------------------------------------------------------------- probing
def _structure(obj):
    """Shapes of ``obj``: a tensor's shape tuple, nested lists for tuples and
    lists, the type name for anything else."""
    if isinstance(obj, torch.Tensor):
        return tuple(obj.shape)
    if isinstance(obj, (tuple, list)):
        return [_structure(o) for o in obj]
    return type(obj).__name__


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)


class _Probe:
    """Forward hooks on every named module of ``model``: the output structure of
    each call and, with ``track_inplace``, the modules whose outputs are changed
    in place after they return (checked at every later hook and at the end,
    through weak references, so no output is kept alive)."""

    def __init__(self, model: nn.Module, track_inplace: bool):
        self.calls: Dict[str, list] = {}
        self.modified = set()
        self.track_inplace = track_inplace
        self._watch: List[tuple] = []
        self._handles = [
            m.register_forward_hook(self._hook(name)) for name, m in model.named_modules() if name
        ]

    def _hook(self, name: str):

        def hook(module, inputs, output):
            self.calls.setdefault(name, []).append(_structure(output))
            if self.track_inplace:
                self.check()
                self._watch += [(name, weakref.ref(t), t._version) for t in _tensors(output)]

        return hook

    def check(self) -> None:
        """Mark watched outputs whose version changed; forget freed ones."""
        alive = []
        for name, ref, version in self._watch:
            t = ref()
            if t is None:
                continue
            if t._version != version:
                self.modified.add(name)
            else:
                alive.append((name, ref, version))
        self._watch = alive

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def _run(model: nn.Module, size: Tuple[int, int], track_inplace: bool) -> Tuple[_Probe, dict]:
    """A zero ``size`` image through backbone, neck and the runnable heads of
    ``model`` under a :class:`_Probe`; returns it and ``{head: error}`` for the
    heads whose ``forward(neck features)`` failed."""
    probe = _Probe(model, track_inplace)
    failed = {}
    try:
        feats = model.extract_feat(torch.zeros(1, 3, *size))
        for head in RUNNABLE_HEADS:
            if getattr(model, head, None) is None:
                continue
            try:
                getattr(model, head)(feats)
            except Exception as err:  # e.g. a DETR head needs more than the features
                failed[head] = f'{type(err).__name__}: {err}'.splitlines()[0][:160]
        probe.check()
    finally:
        probe.remove()
    return probe, failed


def _strides(small, large):
    """Strides of the 4-D shapes of ``small`` measured against ``large`` (the
    same structure at :data:`STRIDE_STEP` more pixels): ``(sh, sw)`` per 4-D
    leaf, None elsewhere or where the size did not grow."""
    if isinstance(small, tuple):
        if len(small) != 4 or not isinstance(large, tuple) or len(large) != 4:
            return None
        dh, dw = large[2] - small[2], large[3] - small[3]
        if dh <= 0 or dw <= 0:
            return None
        return (STRIDE_STEP / dh, STRIDE_STEP / dw)
    if isinstance(small, list) and isinstance(large, list) and len(small) == len(large):
        return [_strides(a, b) for a, b in zip(small, large)]
    return None


def _levels(calls: list, strides: list, index: Optional[int]) -> Optional[list]:
    """``[(shape, stride), ...]``: what a recorder with this ``index`` reads
    (the logic of ``ModuleOutputsRecorder.get``), or None if that is not a list
    of tensors."""
    if len(calls) == 1 and isinstance(calls[0], list):
        out, st = calls[0], strides[0] if isinstance(strides[0], list) else [None] * len(calls[0])
        if index is not None:
            if not -len(out) <= index < len(out):
                return None
            out, st = out[index], st[index]
            out, st = (out, st) if isinstance(out, list) else ([out], [st])
    else:
        if index is None:
            out, st = calls, strides
        else:
            if not all(isinstance(c, list) and -len(c) <= index < len(c) for c in calls):
                return None
            out = [c[index] for c in calls]
            st = [s[index] if isinstance(s, list) else None for s in strides]
    if not out or not all(isinstance(o, tuple) for o in out):
        return None
    return list(zip(out, st))


def _how_to_record(name: str,
                   calls: list,
                   strides: list,
                   modified: bool,
                   container: bool = False) -> Tuple[Optional[list], str]:
    """The valid ``index`` values (``[None]`` for none needed; None if the
    module cannot be recorded) and the 'record as' text."""
    part = name.split('.')[0]
    if part not in RECORDABLE_PARTS:
        if 'roi' in part:
            return None, 'no: RoI head (needs proposals; not run for records)'
        return None, f'no: outside {", ".join(RECORDABLE_PARTS)}'
    if not calls:
        if container:
            return None, 'no: a container, not called (record its elements)'
        return None, 'no: not run by backbone, neck and head forward'
    if modified:
        return None, 'no: its output is changed in place later (record the enclosing block)'
    if _levels(calls, strides, None) is not None:
        return [None], f"source='{name}'"
    width = max(len(c) if isinstance(c, list) else 0 for c in calls)
    valid = [i for i in range(width) if _levels(calls, strides, i) is not None]
    if not valid:
        return None, 'no: its output is not a tensor or a sequence of tensors'
    return valid, f"source='{name}', index={'|'.join(map(str, valid))}"


def recordable_rows(model: nn.Module,
                    size: Sequence[int] = DEFAULT_SIZE,
                    max_depth: Optional[int] = None,
                    name_filter: Optional[str] = None) -> List[dict]:
    """One row per named module of ``model`` (see the module docstring).

    Args:
        model (nn.Module): a detector (e.g. :func:`build_random_detector`); it is
            run in eval mode and left so.
        size (Sequence[int]): ``(H, W)`` of the zero image.
        max_depth (int, optional): keep modules at most this many dotted parts
            deep (``neck`` is 1, ``neck.fpn_convs.0`` is 3).
        name_filter (str, optional): keep modules whose name matches this
            regular expression (``re.search``; a plain substring works).

    Returns:
        list[dict]: rows in module order, each ``dict(name, type, depth,
        calls, strides, recordable, indices, record)``: ``calls`` the output
        structure of each call (shape tuples with the batch dimension, nested
        lists for tuples / lists; empty if it did not run), ``strides`` the same
        structure with ``(sh, sw)`` at 4-D outputs, ``indices`` the valid
        recorder ``index`` values (``[None]``: none needed), ``record`` the
        recorder spec or the reason it cannot be recorded.

    Raises:
        ValueError: ``name_filter`` is not a valid regular expression, or the
            size is not two positive ints.
    """
    pattern = _compile(name_filter)
    size = _check_size(size)
    model.eval()
    small, failed = _run(model, size, track_inplace=True)
    large, _ = _run(model, (size[0] + STRIDE_STEP, size[1] + STRIDE_STEP), track_inplace=False)
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        depth = name.count('.') + 1
        if (max_depth is not None and depth > max_depth) or \
                (pattern is not None and not pattern.search(name)):
            continue
        calls = small.calls.get(name, [])
        big = large.calls.get(name, [])
        strides = [_strides(a, b) for a, b in zip(calls, big)] if len(big) == len(calls) \
            else [None] * len(calls)
        indices, record = _how_to_record(name, calls, strides, name in small.modified,
                                         isinstance(module, (nn.ModuleList, nn.ModuleDict)))
        head = name.split('.')[0]
        if not calls and head in failed:
            record = f'no: {head}.forward(neck features) failed ({failed[head]})'
        rows.append(
            dict(
                name=name,
                type=type(module).__name__,
                depth=depth,
                calls=calls,
                strides=strides,
                recordable=indices is not None,
                indices=indices,
                record=record))
    return rows


def _compile(name_filter: Optional[str]):
    if not name_filter:
        return None
    try:
        return re.compile(name_filter)
    except re.error as err:
        raise ValueError(f'name filter {name_filter!r} is not a valid regular expression '
                         f'({err}); escape special characters, e.g. "neck\\.fpn_convs".')


def _check_size(size) -> Tuple[int, int]:
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f'size must be two positive ints (H, W), got {size!r}.')
    return size


def row_levels(row: dict, index: Optional[int] = None) -> List[dict]:
    """The levels a recorder ``dict(source=row['name'], index=index)`` reads:
    ``[dict(channels, height, width, stride), ...]`` (``stride`` is the
    height's; None for non-4-D levels), or ``[]`` if it reads nothing."""
    levels = _levels(row['calls'], row['strides'], index) if row['calls'] else None
    out = []
    for shape, stride in levels or []:
        four = len(shape) == 4
        out.append(
            dict(
                channels=shape[1] if four else None,
                height=shape[2] if four else None,
                width=shape[3] if four else None,
                stride=_num(stride[0]) if stride else None))
    return out


def _num(x: float):
    return int(x) if float(x).is_integer() else round(x, 2)


# --------------------------------------------------------------------- compare
def compare_levels(student: List[dict], teacher: List[dict], what: str = 'neck') -> List[str]:
    """Suggestions that make ``student``'s levels comparable with ``teacher``'s
    (both :func:`row_levels` of the same module, e.g. the ``neck``).

    Levels pair by index when both have the same strides in the same order,
    else by equal stride. At paired levels a different channel count needs the
    losses' ``adapter``, a different spatial size ``resize_student=True``; a
    different number of levels, or equal strides at different indices, needs
    level selection.

    Returns:
        list[str]: one sentence per finding; a single "match" sentence when the
        levels agree in number, channels, strides and sizes.
    """
    if not student or not teacher:
        return [f'{what}: not recorded on both sides; nothing to compare.']
    s_str, t_str = [lv['stride'] for lv in student], [lv['stride'] for lv in teacher]
    tips = []
    if s_str == t_str:
        pairs = list(zip(range(len(student)), range(len(teacher))))
    else:
        pairs = pair_equal(s_str, t_str)
        if not pairs:
            return [
                f'{what}: no level of equal stride (student {s_str}, teacher {t_str}): '
                f'feature losses cannot pair these outputs; record another module.'
            ]
        s_idx, t_idx = [p[0] for p in pairs], [p[1] for p in pairs]
        strides = [s_str[i] for i in s_idx]
        if s_idx == t_idx:
            tips.append(f'{what}: {len(student)} student levels, {len(teacher)} teacher levels: '
                        f'record the levels of equal stride {strides} on both sides with '
                        f'levels={s_idx}.')
        else:
            tips.append(f'{what}: equal strides sit at different indices (student strides '
                        f'{s_str}, teacher {t_str}): pair levels of equal stride with the '
                        f'recorder\'s levels={s_idx}, teacher_levels={t_idx} (strides '
                        f'{strides}; docs/cross_family.md).')
    chans = [(i, j) for i, j in pairs if student[i]['channels'] != teacher[j]['channels']]
    if chans:
        detail = ', '.join(
            dict.fromkeys(f'{student[i]["channels"]} vs {teacher[j]["channels"]}'
                          for i, j in chans))
        tips.append(f'{what}: channels differ (student vs teacher: {detail}): feature losses '
                    f'need an adapter on the student, adapter=\'auto\' (a 1x1 conv per '
                    f'level where the channels differ); set it on losses whose default is '
                    f'None (e.g. PKDLoss).')
    sizes = [(i, j) for i, j in pairs
             if (student[i]['height'], student[i]['width']) != (teacher[j]['height'],
                                                                teacher[j]['width'])]
    if sizes:
        i, j = sizes[0]
        tips.append(f'{what}: spatial sizes differ at paired levels (e.g. student level {i} '
                    f'{student[i]["height"]}x{student[i]["width"]}, teacher level {j} '
                    f'{teacher[j]["height"]}x{teacher[j]["width"]}): set resize_student=True '
                    f'on the losses.')
    if not tips:
        tips.append(f'{what}: {len(student)} levels match in channels, strides and sizes: '
                    f'feature losses need no adapter, resize or level selection.')
    return tips


def compare_heads(student_rows: List[dict], teacher_rows: List[dict]) -> List[str]:
    """Whether the dense heads' outputs (``index`` 0 and 1 of ``bbox_head`` /
    ``rpn_head``) have equal shapes on both sides, as the head-level losses
    (logits, box distributions) require."""
    s_rows = {r['name']: r for r in student_rows}
    t_rows = {r['name']: r for r in teacher_rows}
    tips = []
    s_heads = [h for h in RUNNABLE_HEADS if h in s_rows and s_rows[h]['calls']]
    t_heads = [h for h in RUNNABLE_HEADS if h in t_rows and t_rows[h]['calls']]
    if s_heads and t_heads and not set(s_heads) & set(t_heads):
        tips.append(f'dense heads differ (student {", ".join(s_heads)}, teacher '
                    f'{", ".join(t_heads)}): no head-level loss compares them; use feature '
                    f'losses on the neck.')
    for head in RUNNABLE_HEADS:
        s, t = s_rows.get(head), t_rows.get(head)
        if not (s and t and s['calls'] and t['calls']):
            continue
        for index in (0, 1):
            a = [(lv['channels'], lv['height'], lv['width']) for lv in row_levels(s, index)]
            b = [(lv['channels'], lv['height'], lv['width']) for lv in row_levels(t, index)]
            if not a or not b:
                continue
            if a == b:
                tips.append(f'{head} index={index}: equal shapes on both sides '
                            f'({_chw_list(a)}): head-level losses can compare them.')
            else:
                tips.append(f'{head} index={index}: student {_chw_list(a)} vs teacher '
                            f'{_chw_list(b)}: head-level losses that compare these outputs '
                            f'need the same head family, classes and anchors (priors).')
    return tips


def _chw_list(levels: List[tuple]) -> str:
    return ', '.join('x'.join(map(str, lv)) for lv in levels)


# ------------------------------------------------------------------ formatting
def _render(struct) -> str:
    """A call's output: ``CxHxW`` for a 4-D tensor (batch dimension dropped),
    the shape without the batch for other tensors, brackets for sequences."""
    if isinstance(struct, tuple):
        return 'x'.join(map(str, struct[1:])) or 'scalar'
    if isinstance(struct, list):
        return '[' + ', '.join(_render(s) for s in struct) + ']'
    return str(struct)


def _render_calls(calls: list) -> str:
    if not calls:
        return '-'
    if len(calls) == 1:
        return _render(calls[0])
    return f'{len(calls)} calls: ' + ', '.join(_render(c) for c in calls)


def _flat_strides(strides) -> List[str]:
    if isinstance(strides, tuple):
        sh, sw = (_num(s) for s in strides)
        return [str(sh) if sh == sw else f'{sh}/{sw}']
    if isinstance(strides, list):
        return [s for x in strides for s in _flat_strides(x)]
    return []


def _render_strides(strides: list) -> str:
    seen = []
    for s in _flat_strides(strides):
        if s not in seen:
            seen.append(s)
    return ', '.join(seen) or '-'


def format_rows(rows: List[dict], max_output: int = 70) -> str:
    """A plain-text table of :func:`recordable_rows`: module, type, output per
    call (``CxHxW``, batch dropped; long ones cut at ``max_output``
    characters), distinct strides of the 4-D outputs, and 'record as'."""
    table = [('module', 'type', 'output (CxHxW per level)', 'stride', 'record as')]
    for r in rows:
        out = _render_calls(r['calls'])
        if len(out) > max_output:
            out = out[:max_output - 3] + '...'
        table.append(('  ' * (r['depth'] - 1) + r['name'], r['type'], out,
                      _render_strides(r['strides']), r['record']))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = []
    for k, row in enumerate(table):
        lines.append('  '.join(c.ljust(w) for c, w in zip(row, widths)) + '  ' + row[4])
        if k == 0:
            lines.append('-' * (sum(widths) + 2 * 4 + len(row[4])))
    return '\n'.join(lines)


def format_levels(levels: Dict[str, List[dict]]) -> str:
    """Levels of :func:`row_levels` side by side, one column per detector
    (``{name: levels}``): ``C, stride s, HxW`` per level index."""
    names = list(levels)
    table = [('level', *names)]
    for i in range(max(len(v) for v in levels.values())):
        table.append((str(i), *(f'{lv[i]["channels"]} ch, stride {lv[i]["stride"]}, '
                                f'{lv[i]["height"]}x{lv[i]["width"]}' if i < len(lv) else '-'
                                for lv in levels.values())))
    widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
    return '\n'.join('  ' + '  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in table)


# ---------------------------------------------------------------------- report
def records_report(cfg: Config,
                   role: str = 'both',
                   size: Optional[Sequence[int]] = None,
                   max_depth: Optional[int] = 3,
                   name_filter: Optional[str] = None) -> str:
    """The text ``tools/analysis_tools/print_records.py`` prints: a table of
    :func:`recordable_rows` per detector of ``cfg`` (:func:`detector_cfgs`) and,
    for a Distiller with both roles, the neck levels side by side with
    :func:`compare_levels` and :func:`compare_heads` per teacher.

    Args:
        cfg (Config): a Distiller or plain detector config (overlays and
            ``--cfg-options`` already merged).
        role (str): see :func:`detector_cfgs`.
        size (Sequence[int], optional): ``(H, W)``; default
            :func:`default_input_size` of the first detector.
        max_depth (int, optional): see :func:`recordable_rows`.
        name_filter (str, optional): see :func:`recordable_rows`.
    """
    cfgs = detector_cfgs(cfg, role)
    size = _check_size(size) if size else default_input_size(cfg, next(iter(cfgs.values())))
    _compile(name_filter)  # a bad pattern fails before anything is built
    text, all_rows = [], {}
    for name, model_cfg in cfgs.items():
        model = build_random_detector(model_cfg, name)
        all_rows[name] = recordable_rows(model, size)
        del model
        shown = [
            r for r in all_rows[name] if (max_depth is None or r['depth'] <= max_depth) and (
                not name_filter or re.search(name_filter, r['name']))
        ]
        text += [
            f'== {name}: {model_cfg.get("type")}, zero image 1x3x{size[0]}x{size[1]}, eval '
            f'mode, random weights (no checkpoint loaded); {len(shown)} of '
            f'{len(all_rows[name])} modules shown', '',
            format_rows(shown), ''
        ]
    if 'student' in all_rows and len(all_rows) > 1:
        student_neck = _find(all_rows['student'], 'neck')
        for name, rows in all_rows.items():
            if name == 'student':
                continue
            teacher_neck = _find(rows, 'neck')
            text += [
                f'== neck: student vs {name}',
                format_levels({
                    'student': student_neck,
                    name: teacher_neck
                })
            ]
            text += ['suggestions:'] + [
                f'  - {t}' for t in compare_levels(student_neck, teacher_neck) +
                compare_heads(all_rows['student'], rows)
            ] + ['']
    return '\n'.join(text).rstrip() + '\n'


def _find(rows: List[dict], name: str) -> List[dict]:
    row = next((r for r in rows if r['name'] == name), None)
    return row_levels(row) if row else []
