"""Where the student's ground truth comes from: the dataset, the teacher's own
confident detections (pseudo labels) or nowhere (distillation only).

``Distiller(labels='gt' | 'pseudo' | 'none', pseudo_labels=dict(...))``:

* ``'gt'`` (default): the dataset's annotations; the task loss and every
  distillation loss run as usual.
* ``'pseudo'``: for unlabelled images. The teacher's detections on the batch,
  kept above ``score_thr`` and after class-wise NMS, replace the batch's ground
  truth; the student's task loss and the losses that need ground truth then run
  on them. The teacher's recorded forward and its detections come from one pass.
* ``'none'``: for unlabelled images, teacher only. No task loss: the student runs
  backbone, neck and the heads whose outputs a loss reads, and trains on the
  distillation losses alone. Losses that need ground truth (they read
  ``gt_instances`` or the student's task loss internals) are refused at build.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmcv.ops import batched_nms
from mmengine.structures import InstanceData
from torch import nn

#: the values of the Distiller's ``labels``
LABEL_MODES = ('gt', 'pseudo', 'none')
#: keys of ``pseudo_labels``
PSEUDO_KEYS = ('teacher', 'score_thr', 'nms_iou', 'max_per_img')


def needs_gt(loss: nn.Module, binding: Dict[str, tuple]) -> bool:
    """Whether ``loss`` needs ground truth: it reads ``gt_instances``, or it
    watches the student's task loss (``student_context``: LD's assignment, the
    student's sampled RoIs), or it says so (``needs_gt = True``)."""
    return ('gt_instances' in binding or hasattr(loss, 'student_context')
            or bool(getattr(loss, 'needs_gt', False)))


class PseudoLabeler:
    """The teacher's confident detections as ground truth (``labels='pseudo'``).

    Args:
        teacher (str): the teacher (of ``teachers``) whose detections are used.
        score_thr (float): keep detections scoring at least this. Defaults to 0.5.
        nms_iou (float, optional): class-wise NMS at this IoU on the kept boxes,
            after the teacher's own test-time NMS. Defaults to None (only the
            teacher's ``test_cfg`` NMS).
        max_per_img (int, optional): keep at most this many (highest scores).
    """

    def __init__(self,
                 teacher: str,
                 score_thr: float = 0.5,
                 nms_iou: Optional[float] = None,
                 max_per_img: Optional[int] = None):
        if not 0.0 <= float(score_thr) <= 1.0:
            raise ValueError(f'pseudo_labels.score_thr must be in [0, 1], got {score_thr!r}.')
        if nms_iou is not None and not 0.0 < float(nms_iou) <= 1.0:
            raise ValueError(f'pseudo_labels.nms_iou must be in (0, 1] or None, got {nms_iou!r}.')
        self.teacher = teacher
        self.score_thr = float(score_thr)
        self.nms_iou = None if nms_iou is None else float(nms_iou)
        self.max_per_img = max_per_img

    def select(self, pred: InstanceData) -> InstanceData:
        """The ground truth made from one image's detections ``pred`` (bboxes,
        scores, labels): score threshold, class-wise NMS, top ``max_per_img``."""
        keep = pred.scores >= self.score_thr
        bboxes, scores, labels = pred.bboxes[keep], pred.scores[keep], pred.labels[keep]
        if self.nms_iou is not None and len(bboxes):
            _, idx = batched_nms(bboxes, scores, labels,
                                 dict(type='nms', iou_threshold=self.nms_iou))
            bboxes, scores, labels = bboxes[idx], scores[idx], labels[idx]
        order = scores.argsort(descending=True)[:self.max_per_img]
        gt = InstanceData()
        gt.bboxes = bboxes[order].detach()
        gt.labels = labels[order].detach()
        return gt

    @torch.no_grad()
    def label(self, teacher: nn.Module, inputs: torch.Tensor, data_samples: Sequence) -> None:
        """Run ``teacher.predict`` on the batch (boxes in the batch's own
        coordinates, ``rescale=False``) and put the selected detections in each
        sample's ``gt_instances`` (in place); the samples keep no predictions."""
        preds = teacher.predict(inputs, data_samples, rescale=False)
        for sample, pred in zip(data_samples, preds):
            sample.gt_instances = self.select(pred.pred_instances)
            del sample.pred_instances
            ignored = getattr(sample, 'ignored_instances', None)
            if ignored is None or 'bboxes' not in ignored:  # an image folder has none
                empty = InstanceData()
                empty.bboxes = inputs.new_zeros(0, 4)
                empty.labels = torch.zeros(0, dtype=torch.long, device=inputs.device)
                sample.ignored_instances = empty


def build_labels(labels: str,
                 pseudo_labels: Optional[dict],
                 teacher_names: List[str],
                 gt_losses: List[str],
                 task_loss_options: Optional[Dict[str, bool]] = None) -> Optional[PseudoLabeler]:
    """Check ``labels`` / ``pseudo_labels`` and build the :class:`PseudoLabeler`.

    Args:
        labels (str): one of :data:`LABEL_MODES`.
        pseudo_labels (dict, optional): :class:`PseudoLabeler` arguments
            (``labels='pseudo'`` only; the teacher defaults to the first).
        teacher_names (list[str]): the Distiller's teachers.
        gt_losses (list[str]): the distillation losses that need ground truth.
        task_loss_options (dict, optional): Distiller option -> whether it is set,
            for the options that need a task loss (refused with ``labels='none'``).

    Returns:
        PseudoLabeler | None: for ``labels='pseudo'``, else None.

    Raises:
        ValueError: an unknown mode, ``pseudo_labels`` outside ``'pseudo'``, an
            unknown teacher or key, or ground-truth losses or options that need a
            task loss with ``labels='none'``.
    """
    if labels not in LABEL_MODES:
        raise ValueError(f'labels must be one of {LABEL_MODES}, got {labels!r}.')
    if labels == 'none' and gt_losses:
        raise ValueError(
            f'labels=\'none\' trains without ground truth, but {gt_losses} need it (they read '
            f'gt_instances or the student\'s task loss). Remove them, or use labels=\'pseudo\' '
            f'(the teacher\'s detections as ground truth).')
    needing = [k for k, v in (task_loss_options or {}).items() if v]
    if labels == 'none' and needing:
        raise ValueError(f'labels=\'none\' has no task loss, but {needing} need one '
                         f'(loss_calibration is measured against it; after stop_epoch nothing '
                         f'would be left to train). Remove them or use labels=\'pseudo\'.')
    if labels != 'pseudo':
        if pseudo_labels is not None:
            raise ValueError(f'pseudo_labels is only read with labels=\'pseudo\' (labels is '
                             f'{labels!r}).')
        return None
    cfg = dict(pseudo_labels or {})
    unknown = sorted(set(cfg) - set(PSEUDO_KEYS))
    if unknown:
        raise ValueError(f'pseudo_labels: unknown keys {unknown}; it takes {list(PSEUDO_KEYS)}.')
    cfg.setdefault('teacher', teacher_names[0])
    if cfg['teacher'] not in teacher_names:
        raise ValueError(f'pseudo_labels.teacher={cfg["teacher"]!r} is not a teacher; the '
                         f'teachers are {teacher_names}.')
    return PseudoLabeler(**cfg)


def check_annotated(data_samples: Sequence) -> None:
    """Raise if a sample of a ``labels='gt'`` batch has no box annotations."""
    for sample in data_samples:
        gt = getattr(sample, 'gt_instances', None)
        if gt is None or 'bboxes' not in gt:
            path = sample.metainfo.get('img_path', '?')
            raise ValueError(
                f'A training image has no box annotations ({path}): the dataset gives no '
                f'ground truth (an image folder?) but the Distiller has labels=\'gt\'. Set '
                f'model.labels=\'pseudo\' (teacher detections as ground truth) or \'none\' '
                f'(distillation losses only), or load annotations in the train pipeline.')
