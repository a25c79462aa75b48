r"""Mimic: Li, Jin, Yan, "Mimicking Very Efficient Network for Object Detection" (CVPR 2017).

Paper: CVF open access, ``https://openaccess.thecvf.com/content_cvpr_2017/papers/`` +
``Li_Mimicking_Very_Efficient_CVPR_2017_paper.pdf`` (no official code).

Feature-map mimicking inside region proposals: the student's features, through a
transform ``r`` onto the teacher's width, are pulled towards the teacher's features
pooled from the same proposals (Eq. 2: :math:`L = \lambda L_m +
L_{gt}`, ``loss_weight`` = λ; the detector's own loss is :math:`L_{gt}`):

.. math::
    L_m = \frac{1}{2N} \sum_{i=1}^{N} \big\| u^{(i)} - r(v^{(i)}) \big\|_2^2
    \qquad \text{(Eq. 3)}

    L_m = \frac{1}{2N} \sum_{i=1}^{N} \frac{1}{m_i}
          \big\| u^{(i)} - r(v^{(i)}) \big\|_2^2 \qquad \text{(Eq. 5)}

with :math:`u^{(i)}` the teacher's and :math:`v^{(i)}` the student's feature of
proposal ``i``, :math:`N` the number of proposals and :math:`m_i` the dimension of
the proposal's feature. The paper samples the proposal features with spatial
pyramid pooling from one feature map; here each RoI is pooled from its FPN level
with the detectors' RoI extractors (RoIAlign, 7 x 7), so :math:`m_i = C \cdot 7
\cdot 7` is the same for every RoI and Eq. 5 is the mean squared error per RoI,
halved.

Readings (options):

* ``rois='proposals'`` (default): the student's RPN proposals of the step (the
  paper mimics "in the proposals" of the RPN the small network trains; every
  proposal the RPN hands to the R-CNN, before sampling). ``'sampled'``: the
  student's sampled R-CNN RoIs; ``'gt'``: the ground-truth boxes.
* ``normalize='dims'`` (default, Eq. 5) or ``'none'`` (Eq. 3).
* ``adapter='auto'``: ``r`` is a 1x1 conv per FPN level where the widths differ,
  applied to the student's feature map before pooling (the paper's transform layer
  on the feature map); none when they match (R101 -> R50). ``dict(kernel_size=1)``
  always trains one.
* ``roi_extractor=None``: the student's features are pooled with the student's
  ``roi_head.bbox_roi_extractor`` and the teacher's with the teacher's; a config
  (``dict(type='SingleRoIExtractor', roi_layer=dict(type='RoIAlign', ...), ...)``)
  pools both with that one.
"""
from typing import Optional, Sequence

from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.roi_records import (ROI_KINDS, RoICapture, RoICaptureMixin, build_roi_extractor,
                                 pool_teacher_student, select_rois)
from ..utils.uncertainty_weighting import ElementErrors
from .base_distill_loss import BaseDistillLoss

NORMALIZE = ('dims', 'none')


def mimic_l2(s_rois: Tensor, t_rois: Tensor, normalize: str = 'dims') -> Tensor:
    r"""Eq. 5 (``normalize='dims'``) or Eq. 3 (``'none'``) on pooled RoI features.

    .. math::
        L_m = \frac{1}{2N} \sum_{i} \frac{1}{m_i} \| u^{(i)} - r(v^{(i)}) \|_2^2,
        \quad m_i = C S S \ (\text{'dims'}), \ m_i = 1 \ (\text{'none'})

    Args:
        s_rois (Tensor): (N, C, S, S) transformed student features r(v).
        t_rois (Tensor): (N, C, S, S) teacher features u (detached here).
        normalize (str): 'dims' or 'none'.

    Returns:
        Tensor: scalar; 0 (in the graph) when N = 0.
    """
    if normalize not in NORMALIZE:
        raise ValueError(f'normalize must be one of {NORMALIZE}, got {normalize!r}.')
    if s_rois.shape != t_rois.shape:
        raise ValueError(f'Mimic: student RoI features {tuple(s_rois.shape)} vs teacher '
                         f'{tuple(t_rois.shape)}; the transform (adapter) must map the student '
                         f'onto the teacher\'s width and both must use the same RoI output size.')
    num = s_rois.shape[0]
    if num == 0:
        return s_rois.sum() * 0
    per_roi = (s_rois - t_rois.detach()).pow(2).flatten(1).sum(1)
    if normalize == 'dims':
        per_roi = per_roi / s_rois[0].numel()
    return per_roi.sum() / (2 * num)


@MODELS.register_module()
class MimicLoss(RoICaptureMixin, BaseDistillLoss):
    """Feature mimicking on RoIs of a two-stage student (Eq. 5 by default).

    Needs the FPN levels the RoI extractors read from both detectors (a recorder
    ``fpn=dict(source='neck', levels=[0, 1, 2, 3])`` for P2-P5 Faster R-CNN) and,
    for ``rois`` 'proposals' / 'sampled', the student's RoIs of the step, captured
    by :meth:`student_context` (the Distiller enters it around the student's task
    loss).

    Args:
        rois (str): 'proposals' (default), 'sampled' or 'gt'.
        normalize (str): 'dims' (Eq. 5, default) or 'none' (Eq. 3).
        roi_extractor (dict, optional): one RoI extractor config for both sides;
            None (default): each detector's own ``bbox_roi_extractor``.
        **kwargs: ``loss_weight`` (λ of Eq. 2, default 1), ``inputs``, ``adapter``
            (default 'auto'), ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 rois: str = 'proposals',
                 normalize: str = 'dims',
                 roi_extractor: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if rois not in ROI_KINDS:
            raise ValueError(f'MimicLoss: rois must be one of {ROI_KINDS}, got {rois!r}.')
        if normalize not in NORMALIZE:
            raise ValueError(f'MimicLoss: normalize must be one of {NORMALIZE}, got '
                             f'{normalize!r}.')
        self.rois = rois
        self.normalize = normalize
        # an RoI extractor has no parameters (nothing in checkpoints)
        self._extractor = None if roi_extractor is None else build_roi_extractor(roi_extractor)
        self._capture: Optional[RoICapture] = None

    def captures_rois(self) -> bool:
        """Only the options that pool on the student's RoIs need them."""
        return self.rois != 'gt'

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                student, teacher) -> Tensor:
        record = None
        if self.rois != 'gt':
            if self._capture is None:
                RoICapture().take(who='MimicLoss')  # raises the explanatory error
            record = self._capture.take(gt_instances, who='MimicLoss')
        rois, _ = select_rois(self.rois, record, gt_instances)
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        ext = self._extractor if self._extractor is not None else getattr(
            getattr(student, 'roi_head', None), 'bbox_roi_extractor', None)
        num_levels = len(ext.featmap_strides) if ext is not None else len(s_feats)
        if len(s_feats) != num_levels:
            raise ValueError(f'MimicLoss: {len(s_feats)} FPN levels recorded but the RoI '
                             f'extractor reads {num_levels}; record exactly those levels '
                             f'(recorders=dict(fpn=dict(source=\'neck\', '
                             f'levels={list(range(num_levels))}))).')
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        s_rois, t_rois = pool_teacher_student(s_feats, t_feats, rois, student, teacher,
                                              self._extractor)
        return self.loss_weight * mimic_l2(s_rois, t_rois, self.normalize)

    def elementwise(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                    student, teacher) -> ElementErrors:
        r"""The unreduced terms of :meth:`forward` (without ``loss_weight``), for a
        wrapper that reweights them (PAD): one group, the pooled RoIs.

        :math:`e = (r(v) - u)^2` per element of the (N, C, S, S) RoI features,
        no weight, :math:`Z = 2 N m` (``normalize='dims'``, Eq. 5, :math:`m = C S
        S`) or :math:`2N` (``'none'``, Eq. 3), at least 1; so that
        :func:`~mmkd_det.models.utils.reduce_element_errors` gives
        ``forward / loss_weight``.
        """
        record = None
        if self.rois != 'gt':
            if self._capture is None:
                RoICapture().take(who='MimicLoss')  # raises the explanatory error
            record = self._capture.take(gt_instances, who='MimicLoss')
        rois, _ = select_rois(self.rois, record, gt_instances)
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        ext = self._extractor if self._extractor is not None else getattr(
            getattr(student, 'roi_head', None), 'bbox_roi_extractor', None)
        if ext is not None and len(s_feats) != len(ext.featmap_strides):
            raise ValueError(f'MimicLoss: {len(s_feats)} FPN levels recorded but the RoI '
                             f'extractor reads {len(ext.featmap_strides)}; record exactly those '
                             f'levels (recorders=dict(fpn=dict(source=\'neck\', '
                             f'levels={list(range(len(ext.featmap_strides)))}))).')
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        s_rois, t_rois = pool_teacher_student(s_feats, t_feats, rois, student, teacher,
                                              self._extractor)
        if s_rois.shape != t_rois.shape:
            raise ValueError(f'Mimic: student RoI features {tuple(s_rois.shape)} vs teacher '
                             f'{tuple(t_rois.shape)}; the transform (adapter) must map the '
                             f'student onto the teacher\'s width.')
        num = s_rois.shape[0]
        dims = s_rois[0].numel() if num and self.normalize == 'dims' else 1
        norm = s_rois.new_tensor(float(max(2 * num * dims, 1)))
        return ElementErrors([s_rois], [(s_rois - t_rois.detach()).pow(2)], [None], [norm])
