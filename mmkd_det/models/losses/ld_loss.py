r"""LD: Zheng et al., "Localization Distillation for Dense Object Detection" (CVPR 2022).

`Paper <https://arxiv.org/abs/2102.12252>`_, Eq. 5. GFL-style heads predict each
box side as a distribution over ``n + 1`` bins (``4 (n + 1)`` regression
channels); LD distils these distributions at the positive locations:

.. math::
    L_{LD} = \sum_{pos} w \sum_{e \in \{l, t, r, b\}} T^2\,
             \mathrm{KL}(\mathcal{S}(z^t_e / T) \,\|\, \mathcal{S}(z^s_e / T)) / 4

as MMDetection's ``LDHead`` (the "main LD" of the paper's repository):
positives are the student's own ATSS assignment, ``w`` is the student's
detached max classification score at the location, the KL is averaged over
the bins (``KnowledgeDistillationKLDivLoss``), the sum is divided by 4 (one
average over the four sides) and not by the number of positives, and levels
are summed. Defaults: ``T = 10``, ``loss_weight = 0.25`` (mmdet's LD configs).
The targets are the student's own: inside a Distiller step, the labels its task
loss's ``get_targets`` computed are captured (:meth:`LDLoss.student_context`)
and reused, so the ATSS assignment runs once per step. Called on its own (or
for a batch the capture did not see), the loss runs ``get_targets`` itself.
"""
from contextlib import contextmanager
from typing import List, Optional, Sequence

import torch
from mmdet.models.losses import KnowledgeDistillationKLDivLoss
from torch import Tensor

from mmkd_det.registry import MODELS
from .base_distill_loss import BaseDistillLoss


@MODELS.register_module()
class LDLoss(BaseDistillLoss):
    """Localization distillation on GFL box distributions at positive locations.

    Needs the recorded classification scores and box distributions of both
    detectors (``cls`` = ``bbox_head`` output 0, ``reg`` = output 1) and heads
    with ``reg_max`` and ``get_targets`` (GFL, LD heads).

    Args:
        temperature (float): T. Defaults to 10.
        **kwargs: ``loss_weight`` (default 0.25), ``inputs``.
    """

    default_inputs = dict(s_cls='student.cls', s_reg='student.reg', t_reg='teacher.reg')
    same_shape_pairs = (('s_reg', 't_reg'), )
    default_adapter = None

    def __init__(self, temperature: float = 10.0, loss_weight: float = 0.25, **kwargs):
        super().__init__(loss_weight=loss_weight, **kwargs)
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        self.temperature = float(temperature)
        self.kl = KnowledgeDistillationKLDivLoss(loss_weight=1.0, T=self.temperature)
        self._captured: Optional[tuple] = None

    @staticmethod
    def _batch_key(gt_instances) -> tuple:
        return tuple(id(g) for g in gt_instances)

    @contextmanager
    def student_context(self, student):
        """Around the student's task loss (the Distiller enters it): record the
        per-level labels of the head's ``get_targets`` for :meth:`forward`. The
        head's method is wrapped only while the context is open."""
        head = getattr(student, 'bbox_head', None)
        if head is None or not hasattr(head, 'get_targets'):
            yield
            return
        original = head.get_targets

        def get_targets(anchor_list, valid_flag_list, batch_gt_instances, *args, **kwargs):
            out = original(anchor_list, valid_flag_list, batch_gt_instances, *args, **kwargs)
            self._captured = (self._batch_key(batch_gt_instances), out[1])
            return out

        self._captured = None
        head.get_targets = get_targets
        try:
            yield
        finally:
            del head.get_targets  # the class's method again

    def _labels(self, head, s_cls, gt_instances, batch_img_metas) -> List[Tensor]:
        """Per-level (B, H W) labels: the captured task-loss assignment of this
        batch, else a fresh ``get_targets``."""
        captured, self._captured = self._captured, None
        sizes = [c.shape[-2:] for c in s_cls]
        if captured is not None and captured[0] == self._batch_key(gt_instances) and \
                [lab.shape[1] for lab in captured[1]] == [h * w for h, w in sizes]:
            return captured[1]
        anchors, valid = head.get_anchors(sizes, batch_img_metas, device=s_cls[0].device)
        return head.get_targets(anchors, valid, gt_instances, batch_img_metas)[1]

    def forward(self, s_cls: Sequence[Tensor], s_reg: Sequence[Tensor], t_reg: Sequence[Tensor], *,
                gt_instances, batch_img_metas, student) -> Tensor:
        head = student.bbox_head
        if not hasattr(head, 'reg_max') or not hasattr(head, 'get_targets'):
            raise TypeError(f'LDLoss needs a GFL-style head with box distributions '
                            f'(reg_max); the student has {type(head).__name__}.')
        bins = head.reg_max + 1
        labels = self._labels(head, s_cls, gt_instances, batch_img_metas)
        losses: List[Tensor] = []
        for cls, s, t, lab in zip(s_cls, s_reg, t_reg, labels):
            pos = ((lab >= 0) & (lab < head.num_classes)).reshape(-1)
            score = cls.detach().sigmoid().permute(0, 2, 3, 1).reshape(-1,
                                                                       cls.shape[1]).amax(1)[pos]
            s_pos = s.permute(0, 2, 3, 1).reshape(-1, 4 * bins)[pos].reshape(-1, bins)
            t_pos = t.detach().permute(0, 2, 3, 1).reshape(-1, 4 * bins)[pos].reshape(-1, bins)
            if not len(s_pos):
                losses.append(s.sum() * 0)
                continue
            losses.append(
                self.kl(
                    s_pos, t_pos, weight=score[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0))
        return self.loss_weight * torch.stack(losses).sum()
