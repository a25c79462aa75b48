"""RoI-level records of a two-stage student (Faster R-CNN and other ``StandardRoIHead``
detectors) and RoI features / logits of teacher and student on the same RoIs.

A distillation loss of a two-stage pair needs the RoIs the student itself uses in a
training step: the proposals of its RPN and the RoIs its R-CNN sampler picks (with
their labels). Both exist only inside the student's ``roi_head.loss``; the
Distiller records module outputs only. :func:`capture_student_rois` is a context
manager (enter it from a loss's ``student_context``) that, while open, wraps the
student's ``roi_head.loss`` and ``roi_head.bbox_loss`` and keeps, for the one step
it sees, a :class:`StudentRoIs`:

* ``proposals``: the RPN proposals per image, as the RPN handed them to the RoI
  head (before mmdet's sampler adds the ground-truth boxes);
* ``rois`` / ``labels`` / ``pos``: the sampled RoIs in ``bbox2roi`` layout
  ``(R, 5) = (image index, x1, y1, x2, y2)``, their class (``num_classes`` =
  background) and positive flag, in the order of mmdet's ``bbox_loss``
  (per image: positives, then negatives);
* ``cls_score`` / ``bbox_pred``: the student's R-CNN outputs on those RoIs from its
  own task-loss forward (in the graph; no second student RoI forward is needed);
* ``feats``: the student's FPN features the RoI head read.

:func:`select_rois` turns a record into the RoIs a loss names (``'sampled'``,
``'proposals'`` or ``'gt'``), :func:`pool_roi_features` pools FPN features of any
width on RoIs with an RoI extractor's levels and RoI layers, and
:func:`roi_head_outputs` runs a detector's R-CNN box branch on given RoIs (the
teacher's under ``no_grad``).
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

#: the RoIs a loss can ask for
ROI_KINDS = ('sampled', 'proposals', 'gt')


@dataclass
class StudentRoIs:
    """The student's RoIs of one training step (see the module docstring).

    Attributes:
        proposals (list[Tensor]): per image (n_i, 4) RPN proposals, detached.
        rois (Tensor): (R, 5) sampled RoIs, detached.
        labels (Tensor): (R,) long, class of each sampled RoI, ``num_classes`` for
            background.
        pos (Tensor): (R,) bool, positive sampled RoIs.
        cls_score (Tensor): (R, num_classes + 1) the student's R-CNN logits on
            ``rois`` (in the autograd graph).
        bbox_pred (Tensor): (R, 4 or 4 num_classes) its box deltas.
        feats (tuple[Tensor]): the student's FPN levels given to the RoI head.
        num_classes (int): the student's R-CNN classes (without background).
        batch_key (tuple): identity of the batch's ``gt_instances`` (to refuse a
            record of another batch).
    """
    proposals: List[Tensor]
    rois: Tensor
    labels: Tensor
    pos: Tensor
    cls_score: Tensor
    bbox_pred: Tensor
    feats: Tuple[Tensor, ...]
    num_classes: int
    batch_key: tuple


def batch_key(gt_instances: Sequence) -> tuple:
    """Identity of a batch: the ids of its ``gt_instances`` objects (the Distiller
    hands a loss the same objects the student's RoI head read)."""
    return tuple(id(g) for g in gt_instances)


def _box_tensor(boxes) -> Tensor:
    """Plain (n, 4) tensor of mmdet boxes (``Tensor`` or ``BaseBoxes``)."""
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


class RoICapture:
    """What :func:`capture_student_rois` yields: ``record`` holds the
    :class:`StudentRoIs` of the last student ``roi_head.loss`` call (None before)."""

    def __init__(self):
        self.record: Optional[StudentRoIs] = None
        self._pending: Optional[dict] = None

    def take(self, gt_instances: Optional[Sequence] = None, who: str = 'The loss') -> StudentRoIs:
        """The captured record (then forgotten), checked to belong to the batch of
        ``gt_instances`` when given.

        Raises:
            RuntimeError: nothing was captured, or the capture is of another batch.
        """
        record, self.record = self.record, None
        if record is None:
            raise RuntimeError(
                f'{who} needs the student\'s RoIs of this step, but none were captured: the '
                f'student must be a two-stage detector whose roi_head.loss runs inside '
                f'capture_student_rois(student) (the Distiller enters the loss\'s '
                f'student_context around the student\'s task loss; call the loss after '
                f'Distiller.record_step, or use rois=\'gt\' where the loss allows it).')
        if gt_instances is not None and record.batch_key != batch_key(gt_instances):
            raise RuntimeError(f'{who}: the captured student RoIs belong to another batch than '
                               f'the gt_instances given; capture and loss must see the same '
                               f'step.')
        return record


def _set_or_restore(module: nn.Module, name: str, previous) -> None:
    """Put back instance attribute ``name`` as it was (absent when ``previous`` is None)."""
    if previous is None:
        if name in vars(module):
            delattr(module, name)
    else:
        setattr(module, name, previous)


@contextmanager
def capture_student_rois(student: nn.Module) -> Iterator[RoICapture]:
    """While open, capture the RoIs of the student's ``roi_head.loss`` calls.

    Wraps the instance's ``roi_head.loss`` (to see the RPN proposals and the
    batch) and ``roi_head.bbox_loss`` (to see mmdet's sampling results and the
    R-CNN outputs) and restores them on exit, also when other captures of the
    same head are nested inside (each restores what it found). The wrapped
    methods compute exactly what mmdet's do: the sampling consumes the same
    random numbers, and only references and a ``bbox2roi`` of the sampled priors
    are added.

    Args:
        student (nn.Module): a detector with a ``roi_head`` that has ``loss`` and
            ``bbox_loss`` (mmdet's ``StandardRoIHead`` and its subclasses).

    Yields:
        RoICapture: its ``record`` is set by each ``roi_head.loss``.

    Raises:
        TypeError: the student has no such RoI head.
    """
    from mmdet.structures.bbox import bbox2roi

    head = getattr(student, 'roi_head', None)
    if head is None or not hasattr(head, 'bbox_loss') or not hasattr(head, 'bbox_head'):
        raise TypeError(f'RoI-level distillation needs a two-stage student with a '
                        f'StandardRoIHead-like roi_head (loss, bbox_loss, bbox_head); the '
                        f'student is {type(student).__name__} with roi_head '
                        f'{type(head).__name__ if head is not None else None}.')
    capture = RoICapture()
    prev_loss, prev_bbox_loss = vars(head).get('loss'), vars(head).get('bbox_loss')
    original_loss, original_bbox_loss = head.loss, head.bbox_loss

    def loss(x, rpn_results_list, batch_data_samples, *args, **kwargs):
        # mmdet pops `bboxes` (renamed `priors`) from the results: read them first
        capture._pending = dict(
            proposals=[_box_tensor(r.bboxes).detach() for r in rpn_results_list],
            feats=tuple(x),
            batch_key=batch_key([s.gt_instances for s in batch_data_samples]))
        try:
            return original_loss(x, rpn_results_list, batch_data_samples, *args, **kwargs)
        finally:
            capture._pending = None

    def bbox_loss(x, sampling_results, *args, **kwargs):
        out = original_bbox_loss(x, sampling_results, *args, **kwargs)
        pending = capture._pending
        if pending is not None:  # a call of roi_head.loss, not a stray one
            num_classes = head.bbox_head.num_classes
            labels, pos = [], []
            for res in sampling_results:
                num_neg = len(res.neg_priors)
                labels += [res.pos_gt_labels, res.pos_gt_labels.new_full((num_neg, ), num_classes)]
                pos += [
                    res.pos_gt_labels.new_ones(len(res.pos_gt_labels), dtype=torch.bool),
                    res.pos_gt_labels.new_zeros(num_neg, dtype=torch.bool)
                ]
            capture.record = StudentRoIs(
                proposals=pending['proposals'],
                rois=bbox2roi([_box_tensor(res.priors) for res in sampling_results]).detach(),
                labels=torch.cat(labels).long(),
                pos=torch.cat(pos),
                cls_score=out['cls_score'],
                bbox_pred=out['bbox_pred'],
                feats=pending['feats'],
                num_classes=num_classes,
                batch_key=pending['batch_key'])
        return out

    head.loss = loss
    head.bbox_loss = bbox_loss
    try:
        yield capture
    finally:
        _set_or_restore(head, 'bbox_loss', prev_bbox_loss)
        _set_or_restore(head, 'loss', prev_loss)


class RoICaptureMixin:
    """For a distillation loss on the student's own RoIs: its ``student_context``
    (entered by the Distiller around the student's task loss) captures them with
    :func:`capture_student_rois` into ``self._capture``, unless
    :meth:`captures_rois` says the loss's options need none (e.g. ``rois='gt'``).
    Put it before :class:`BaseDistillLoss` in the bases."""

    _capture: Optional[RoICapture] = None

    def captures_rois(self) -> bool:
        """Whether this step needs the student's RoIs (default: always)."""
        return True

    @contextmanager
    def student_context(self, student: nn.Module) -> Iterator[None]:
        if not self.captures_rois():
            yield
            return
        with capture_student_rois(student) as capture:
            self._capture = capture
            yield


def gt_rois(gt_instances: Sequence) -> Tuple[Tensor, Tensor]:
    """The ground-truth boxes as RoIs: ``(R, 5)`` in ``bbox2roi`` layout and their
    ``(R,)`` labels."""
    from mmdet.structures.bbox import bbox2roi
    rois = bbox2roi([_box_tensor(g.bboxes).float() for g in gt_instances])
    labels = torch.cat([g.labels for g in gt_instances]).long() if len(gt_instances) else \
        rois.new_zeros(0, dtype=torch.long)
    return rois, labels


def select_rois(kind: str,
                record: Optional[StudentRoIs] = None,
                gt_instances: Optional[Sequence] = None) -> Tuple[Tensor, Optional[Tensor]]:
    """RoIs of ``kind`` and their labels (None for proposals, which are not assigned).

    Args:
        kind (str): ``'sampled'`` (the student's sampled RoIs: positives and
            negatives, ground truths included where the sampler adds them),
            ``'proposals'`` (its RPN proposals) or ``'gt'`` (ground-truth boxes).
        record (StudentRoIs, optional): needed for 'sampled' and 'proposals'.
        gt_instances (Sequence, optional): needed for 'gt'.

    Returns:
        tuple: ``(R, 5)`` RoIs and ``(R,)`` labels or None.
    """
    if kind not in ROI_KINDS:
        raise ValueError(f'rois must be one of {ROI_KINDS}, got {kind!r}.')
    if kind == 'gt':
        if gt_instances is None:
            raise ValueError('rois=\'gt\' needs gt_instances.')
        return gt_rois(gt_instances)
    if record is None:
        raise ValueError(f'rois={kind!r} needs the student\'s captured RoIs (StudentRoIs).')
    if kind == 'sampled':
        return record.rois, record.labels
    from mmdet.structures.bbox import bbox2roi
    return bbox2roi(list(record.proposals)), None


def build_roi_extractor(cfg: Union[dict, nn.Module]) -> nn.Module:
    """An mmdet RoI extractor from its config (e.g. ``dict(type='SingleRoIExtractor',
    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
    out_channels=256, featmap_strides=[4, 8, 16, 32])``); a module is returned as is."""
    if isinstance(cfg, nn.Module):
        return cfg
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MMDET_MODELS.build(dict(cfg))


def pool_roi_features(extractor: nn.Module, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    r"""RoI features of ``feats`` (any number of channels) on ``rois`` with the levels
    and RoI layers of ``extractor`` (an mmdet ``SingleRoIExtractor``).

    Each RoI is pooled from level :math:`k = \lfloor \log_2(\sqrt{wh} / s_0 +
    10^{-6}) \rfloor` clipped to the extractor's levels (:math:`s_0` =
    ``finest_scale``, FPN paper Eq. 1 as mmdet), by that level's RoI layer
    (RoIAlign). Equal to ``extractor(feats[:extractor.num_inputs], rois)`` where that
    is defined (the same channel count as ``extractor.out_channels``); unlike it,
    the output takes its channels from ``feats``, so adapted student features (the
    teacher's width) pool with the student's own extractor. Every level stays in the
    graph (zero-weighted when no RoI maps to it), as mmdet does for DDP.

    Host synchronisation: one per level (the RoIs of the level are gathered with
    ``nonzero``), as mmdet's own extractor, which the student's task loss runs anyway.

    Args:
        extractor (nn.Module): provides ``roi_layers``, ``featmap_strides``,
            ``map_roi_levels`` (and ``roi_scale_factor`` if set).
        feats (Sequence[Tensor]): per level (B, C, H_l, W_l); at least
            ``len(extractor.featmap_strides)`` levels (the first ones are used).
        rois (Tensor): (R, 5) ``(image index, x1, y1, x2, y2)`` in input pixels.

    Returns:
        Tensor: (R, C, S, S) with S the RoI layer's output size.
    """
    num_levels = len(extractor.featmap_strides)
    if len(feats) < num_levels:
        raise ValueError(f'The RoI extractor pools from {num_levels} levels (featmap_strides '
                         f'{list(extractor.featmap_strides)}) but {len(feats)} feature levels '
                         f'were given; record the FPN levels it reads (e.g. the neck with '
                         f'levels=[0, ..., {num_levels - 1}]).')
    feats = list(feats[:num_levels])
    rois = rois.to(feats[0].dtype)
    out_size = extractor.roi_layers[0].output_size
    out_size = tuple(out_size) if isinstance(out_size, (tuple, list)) else (out_size, out_size)
    out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], *out_size)
    if num_levels == 1:
        return extractor.roi_layers[0](feats[0],
                                       rois) if rois.shape[0] else out + feats[0].sum() * 0
    levels = extractor.map_roi_levels(rois, num_levels)
    scale = getattr(extractor, 'roi_scale_factor', None)
    if scale is not None:
        rois = extractor.roi_rescale(rois, scale)
    for lvl in range(num_levels):
        inds = (levels == lvl).nonzero(as_tuple=False).squeeze(1)
        if inds.numel():
            out = out.index_copy(0, inds, extractor.roi_layers[lvl](feats[lvl], rois[inds]))
        else:
            out = out + feats[lvl].sum() * 0
    return out


def pool_teacher_student(s_feats: Sequence[Tensor],
                         t_feats: Sequence[Tensor],
                         rois: Tensor,
                         student: Optional[nn.Module] = None,
                         teacher: Optional[nn.Module] = None,
                         roi_extractor: Optional[nn.Module] = None) -> Tuple[Tensor, Tensor]:
    """Student and teacher FPN features pooled on the same ``rois``
    (:func:`pool_roi_features`): each with its detector's own
    ``roi_head.bbox_roi_extractor``, or both with ``roi_extractor`` when given (see
    :func:`build_roi_extractor`). The teacher's side is computed without gradient.

    Returns:
        tuple: (R, C_s, S, S) student and (R, C_t, S, S) teacher RoI features.
    """
    if roi_extractor is not None:
        s_ext = t_ext = roi_extractor
    else:
        for role, model in (('student', student), ('teacher', teacher)):
            if not hasattr(getattr(model, 'roi_head', None), 'bbox_roi_extractor'):
                raise TypeError(f'The {role} ({type(model).__name__}) has no '
                                f'roi_head.bbox_roi_extractor; give roi_extractor=dict(...) '
                                f'to pool a one-stage detector\'s features.')
        s_ext, t_ext = student.roi_head.bbox_roi_extractor, teacher.roi_head.bbox_roi_extractor
    s_rois = pool_roi_features(s_ext, s_feats, rois.to(s_feats[0].device))
    with torch.no_grad():
        t_rois = pool_roi_features(t_ext, [t.detach() for t in t_feats], rois.to(t_feats[0].device))
    return s_rois, t_rois


def roi_head_outputs(detector: nn.Module,
                     feats: Sequence[Tensor],
                     rois: Tensor,
                     grad: bool = True) -> Tuple[Tensor, Tensor]:
    """The detector's R-CNN box branch on ``rois``: its own RoI extractor, shared
    head (if any) and ``bbox_head``, as mmdet's ``StandardRoIHead._bbox_forward``.

    Args:
        detector (nn.Module): a two-stage detector (``roi_head.bbox_head``).
        feats (Sequence[Tensor]): its FPN levels (B, C, H_l, W_l).
        rois (Tensor): (R, 5) RoIs, e.g. the student's sampled ones.
        grad (bool): False for the teacher: computed under ``no_grad`` and
            returned detached.

    Returns:
        tuple: ``cls_score`` (R, num_classes + 1) and ``bbox_pred`` (R, 4 or
        4 num_classes).
    """
    head = getattr(detector, 'roi_head', None)
    if head is None or not hasattr(head, 'bbox_roi_extractor'):
        raise TypeError(f'{type(detector).__name__} has no StandardRoIHead-like roi_head '
                        f'(bbox_roi_extractor, bbox_head): RoI outputs need a two-stage '
                        f'detector.')
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        bbox_feats = pool_roi_features(head.bbox_roi_extractor, feats, rois)
        if getattr(head, 'with_shared_head', False):
            bbox_feats = head.shared_head(bbox_feats)
        cls_score, bbox_pred = head.bbox_head(bbox_feats)
    if not grad:
        cls_score, bbox_pred = cls_score.detach(), bbox_pred.detach()
    return cls_score, bbox_pred


def teacher_roi_outputs(teacher: nn.Module, t_feats: Sequence[Tensor],
                        rois: Tensor) -> Tuple[Tensor, Tensor]:
    """The teacher's R-CNN box branch on the (student's) ``rois``, without gradient:
    :func:`roi_head_outputs` with ``grad=False`` on detached teacher features."""
    return roi_head_outputs(teacher, [f.detach() for f in t_feats], rois, grad=False)
