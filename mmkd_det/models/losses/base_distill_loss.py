"""Base class of every distillation loss: input binding, adapters, shape checks,
fp32 computation under mixed precision."""
from contextlib import ExitStack
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..connectors import LevelAdapters
from ..utils.level_pairing import format_levels, level_pairing_hint

Shapes = Dict[str, List[torch.Size]]

#: dtypes that autocast (``--amp``: fp16 on GPU; bf16 on CPU) gives the records
LOW_PRECISION = (torch.float16, torch.bfloat16)


def to_float32(value: Any) -> Any:
    """``value`` with every fp16 / bf16 tensor cast to float32 (differentiably),
    also inside lists, tuples and dicts; anything else is returned as it is.

    Args:
        value: a tensor, a (nested) list / tuple / dict of them, or any object.

    Returns:
        the same structure, its low-precision tensors in float32.
    """
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in LOW_PRECISION else value
    if isinstance(value, dict):
        return type(value)((k, to_float32(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [to_float32(v) for v in value]
        if hasattr(value, '_fields'):  # a namedtuple
            return type(value)(*items)
        return type(value)(items)
    return value


def autocast_disabled(*values: Any) -> ExitStack:
    """A context that switches autocast off for the CPU and for the devices of
    the tensors in ``values`` (nested as in :func:`to_float32`) wherever it is on.

    Args:
        *values: the arguments of a call.

    Returns:
        ExitStack: enter it (``with``) around the computation.
    """
    devices = {'cpu'}
    pending = list(values)
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            devices.add(value.device.type)
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
    stack = ExitStack()
    for device in sorted(devices):
        try:
            enabled = torch.is_autocast_enabled(device)
        except (RuntimeError, ValueError):  # a device type autocast does not know
            continue
        if enabled:
            stack.enter_context(torch.autocast(device_type=device, enabled=False))
    return stack


class BaseDistillLoss(BaseModule):
    """Shared plumbing of distillation losses.

    A subclass declares what its ``forward`` consumes and the Distiller feeds it:

    * ``default_inputs``: forward argument -> ``'student.<record>'`` or
      ``'teacher.<record>'`` (records are named in the Distiller's
      ``recorders``); a config may override them with ``inputs=dict(...)``.
    * keyword-only extras the Distiller provides on request by name:
      ``gt_instances``, ``batch_img_metas``, ``student``, ``teacher``
      (the detectors: heads, priors, assigners).
    * ``feature_pairs``: ``(student_arg, teacher_arg)`` per-level features whose
      student side goes through :meth:`adapt` (adapter + optional resize).
    * ``same_shape_pairs``: per-level tensors that must match exactly (logits).

    Args:
        loss_weight (float): scale of this loss. Defaults to 1.0.
        inputs (dict, optional): overrides of ``default_inputs``.
        adapter (str | dict | None): ``'auto'``: a 1x1 conv per level only when
            channels differ; ``dict(kernel_size=k)``: always a k x k conv per
            level; ``None``: never (a channel mismatch is then an error).
            Defaults to the class's ``default_adapter``.
        resize_student (bool): bilinearly resize student features to the
            teacher's H, W when they differ; otherwise that is an error.

    Mixed precision: when the detectors run under autocast (``--amp``: fp16 on
    GPU; bf16 on CPU), their records are fp16 / bf16. A loss called as a module
    (``loss(...)``, as the Distiller does) computes with autocast switched off
    and its fp16 / bf16 tensor arguments cast to float32 (:func:`to_float32`),
    adapters included: softmax / log-softmax with a temperature, BCE,
    variances, normalisers and sums over whole feature maps keep fp32
    precision and range, and the loss is a float32 tensor. The gradients flow
    back to the records in their own dtype. The cost is a float32 copy of the
    records each step.
    """

    default_inputs: Dict[str, str] = {}
    feature_pairs: Tuple[Tuple[str, str], ...] = ()
    same_shape_pairs: Tuple[Tuple[str, str], ...] = ()
    default_adapter: Union[str, dict, None] = 'auto'

    def __init__(self,
                 loss_weight: float = 1.0,
                 inputs: Optional[dict] = None,
                 adapter: Union[str, dict, None] = 'default',
                 resize_student: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.loss_weight = float(loss_weight)
        self.inputs = dict(self.default_inputs)
        self.inputs.update(inputs or {})
        self.adapter_cfg = self.default_adapter if adapter == 'default' else adapter
        if not (self.adapter_cfg in (None, 'auto') or isinstance(self.adapter_cfg, dict)):
            raise ValueError(f"adapter must be 'auto', None or dict(kernel_size=k); "
                             f'got {self.adapter_cfg!r}.')
        self.resize_student = resize_student
        self.adapters = torch.nn.ModuleDict()
        self._needs_resize: Dict[str, bool] = {}

    def __call__(self, *args, **kwargs):
        """Run the module in float32 with autocast off (see the class docstring)."""
        with autocast_disabled(args, kwargs):
            return super().__call__(*to_float32(args), **to_float32(kwargs))

    # ------------------------------------------------------------------ build
    def setup(self, shapes: Shapes, name: str = '') -> None:
        """Check recorded shapes (from the Distiller's build-time probe) and
        create the adapters. ``shapes`` maps forward argument -> per-level shapes.

        Raises:
            ValueError: a level-count, spatial-size or channel mismatch that
                ``adapter`` / ``resize_student`` do not cover, or head outputs of
                different shapes (``same_shape_pairs``); every message lists both
                sides' (C, H, W) per level and the fix.
        """
        for a, b in self.same_shape_pairs:
            self._check_levels(shapes, a, b, name)
            bad = [
                lvl for lvl, (sa, sb) in enumerate(zip(shapes[a], shapes[b])) if sa[1:] != sb[1:]
            ]
            if bad:
                raise ValueError(
                    f'{name}: {a} and {b} differ at level {bad[0]}: {tuple(shapes[a][bad[0]][1:])} '
                    f'vs {tuple(shapes[b][bad[0]][1:])} (C, H, W); these head outputs are '
                    f'compared element by element. Student {a}: {format_levels(shapes[a])}; '
                    f'teacher {b}: {format_levels(shapes[b])}. Teacher and student need the '
                    f'same head family with the same num_classes and priors per location '
                    f'(e.g. RetinaNet: 9 anchors x classes; GFL / ATSS / FCOS: 1 x classes; '
                    f'an RPN: 3 anchors x 1 objectness): set the same num_classes (and anchor '
                    f'generator) in both, or, for a teacher of another head family, use a '
                    f'feature loss on the neck (PKD, CWD, FGD, ...) instead.')
        for s_arg, t_arg in self.feature_pairs:
            self._check_levels(shapes, s_arg, t_arg, name)
            s_shapes, t_shapes = shapes[s_arg], shapes[t_arg]
            listing = (f'Student {s_arg}: {format_levels(s_shapes)}; teacher {t_arg}: '
                       f'{format_levels(t_shapes)} (C, H, W per level).')
            s_ch = [s[1] for s in s_shapes]
            t_ch = [s[1] for s in t_shapes]
            hw_differ = any(s[2:] != t[2:] for s, t in zip(s_shapes, t_shapes))
            if hw_differ and not self.resize_student:
                raise ValueError(
                    f'{name}: spatial size of {s_arg} {[tuple(s[2:]) for s in s_shapes]} '
                    f'differs from {t_arg} {[tuple(s[2:]) for s in t_shapes]} (H, W per '
                    f'level). {listing} {level_pairing_hint(s_shapes, t_shapes)} Or set '
                    f'resize_student=True on this loss to resize the student to the '
                    f'teacher\'s H, W.')
            self._needs_resize[s_arg] = hw_differ
            cfg = self.adapter_cfg
            if cfg == 'auto':
                cfg = dict(kernel_size=1) if s_ch != t_ch else None
            if cfg is None:
                if s_ch != t_ch:
                    raise ValueError(
                        f'{name}: channel mismatch without adapter: student {s_arg} has '
                        f'{s_ch} channels, teacher {t_arg} has {t_ch}. {listing} Set '
                        f'adapter=\'auto\' (a 1x1 conv per level where widths differ) or '
                        f'adapter=dict(kernel_size=k) on this loss.')
                continue
            self.adapters[s_arg] = LevelAdapters(s_ch, t_ch, **cfg)

    def check_detectors(self, student, teacher) -> None:
        """Build-time check of the detectors a loss taking ``student`` / ``teacher``
        reads (heads, prior generators); raises with the fix. Default: nothing."""

    @staticmethod
    def _check_levels(shapes: Shapes, a: str, b: str, name: str) -> None:
        """Raise unless student ``a`` and teacher ``b`` have the same number of
        levels; the message lists both sides' (C, H, W) per level and the
        recorder ``levels`` / ``teacher_levels`` that pair equal strides."""
        if len(shapes[a]) != len(shapes[b]):
            raise ValueError(
                f'{name}: {a} has {len(shapes[a])} levels but {b} has {len(shapes[b])}; '
                f'teacher and student must expose the same number of FPN levels (neck '
                f'num_outs / head levels), or the recorder must pair them. Student {a}: '
                f'{format_levels(shapes[a])}; teacher {b}: {format_levels(shapes[b])} '
                f'(C, H, W per level). {level_pairing_hint(shapes[a], shapes[b])}')

    # ---------------------------------------------------------------- forward
    def level_pairs(self, s_feats, t_feats) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Student and teacher per-level lists (a single tensor is one level), checked
        to have the same non-zero number of levels."""
        s_feats = [s_feats] if isinstance(s_feats, torch.Tensor) else list(s_feats)
        t_feats = [t_feats] if isinstance(t_feats, torch.Tensor) else list(t_feats)
        name = type(self).__name__
        if len(s_feats) != len(t_feats):
            raise ValueError(f'{name}: {len(s_feats)} student levels but {len(t_feats)} '
                             f'teacher levels; record the same FPN levels for both.')
        if not s_feats:
            raise ValueError(f'{name}: no feature levels given.')
        return s_feats, t_feats

    def adapted_pairs(self,
                      s_feats,
                      t_feats,
                      arg: str = 's_feats') -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """:meth:`level_pairs`, then the student side through :meth:`adapt`."""
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        return self.adapt(arg, s_feats, t_feats), t_feats

    def squared_error_maps(self, s_feats: Sequence[torch.Tensor],
                           t_feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per level (N, H, W): ``sum_c (T - S)^2`` of adapted student features ``S``
        and the detached teacher ``T``, which must have the same shape."""
        maps = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape != t.shape:
                raise ValueError(f'{type(self).__name__}: level {lvl}: adapted student '
                                 f'{tuple(s.shape)} vs teacher {tuple(t.shape)}; let the '
                                 f'Distiller call setup (it builds the adapters) or set '
                                 f'adapter / resize_student.')
            maps.append((t.detach() - s).pow(2).sum(dim=1))
        return maps

    def adapt(self, arg: str, s_feats: Sequence[torch.Tensor],
              t_feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Student features of ``arg`` mapped onto the teacher's C, H, W."""
        feats = list(s_feats)
        if arg in self.adapters:
            feats = self.adapters[arg](feats)
        if self._needs_resize.get(arg):
            feats = [
                f if f.shape[2:] == t.shape[2:] else F.interpolate(
                    f, size=t.shape[2:], mode='bilinear', align_corners=False)
                for f, t in zip(feats, t_feats)
            ]
        return feats
