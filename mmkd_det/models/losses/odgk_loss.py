r"""ODGK: Tang, Zhang, Cheng, Lu, Xu, Niu, He, "Distilling Object Detectors with
Global Knowledge" (ECCV 2022).

`Paper <https://arxiv.org/abs/2210.09022>`_, authors' code
`hikvision-research/DAVAR-Lab-ML <https://github.com/hikvision-research/DAVAR-Lab-ML>`_
(``ECCV22_Distilling_Object_Detectors_with_Global_Knowledge``, mmdet 2.11).

Instance features are "local" knowledge and noisy for blurred, occluded or small
instances. ODGK measures each instance against a group of common basis vectors,
*prototypes*, found in both the teacher's and the student's feature spaces
(prototype generation module, PGM), and distils the instance's representation in
that prototype space (*global* knowledge) with a robust distilling module (RDM) that
down-weights instances whose representations differ in the two spaces.

What is computed here (the paper's text could not be read in this environment:
the formulas below are those of the authors' released code, whose PGM / RDM names
they carry; the paper's equation numbers are not cited):

* instance features :math:`s_i, t_i`: the student's and the teacher's FPN features
  pooled on the instance's box (RoIAlign of each detector's own extractor, averaged
  over the bins), ground-truth boxes by default;
* PGM (:mod:`mmkd_det.models.utils.prototypes`): per class, ``T`` instances chosen by
  a joint matching pursuit over the instance features of both detectors, giving
  paired prototypes :math:`p^s_k, p^t_k` (the same instance in both spaces);
* global knowledge: :math:`g^s_{ik} = \cos(s_i, p^s_k)`, :math:`g^t_{ik} = \cos(t_i,
  p^t_k)` over the prototypes of all classes;
* RDM robustness of instance ``i`` of class :math:`y_i`:

  .. math::
      \omega_i = 1 - \Big| \max_{k \in P_{y_i}} g^s_{ik} - \max_{k \in P_{y_i}}
      g^t_{ik} \Big| \quad (\text{no gradient})

* global loss (the authors' ``r2i`` loss):

  .. math::
      L_{global} = \frac{1}{N K} \sum_{i=1}^{N} \sum_{k=1}^{K}
      \mathrm{smooth}_{L1}\big(\omega_i g^s_{ik} - \omega_i g^t_{ik}\big)

* optional robust local loss (``local_weight`` > 0; closest variant of the
  authors' robustness-weighted local knowledge, see the README):
  :math:`L_{local} = \frac{1}{N} \sum_i \omega_i \, \mathrm{mean}\big((r(S_i) -
  T_i)^2\big)` on the RoI-pooled feature maps, ``r`` the adapter.

Departures (options, README): the authors regenerate the prototypes once per epoch
from a pass of both detectors over up to 800 images per class; here a class-wise bank
keeps the instance features of the last ``bank_size`` instances per class seen in
training and the prototypes are re-selected from it every ``update_interval``
training steps (the first at the first step; the bank need not be full). The
authors' prototypes are per FPN level with every instance pooled from every level;
here one set per class with each instance pooled from its RoI level. The bank is per
process (not gathered across GPUs); it is saved in checkpoints with the prototypes.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils.prototypes import (ClassFeatureBank, density_candidates, prototype_similarity,
                                select_prototypes)
from ..utils.roi_records import (RoICapture, RoICaptureMixin, build_roi_extractor,
                                 pool_teacher_student, select_rois)
from .base_distill_loss import BaseDistillLoss

ODGK_ROIS = ('gt', 'sampled')


def robustness(g_s: Tensor, g_t: Tensor, own: Tensor) -> Tensor:
    r"""RDM weight :math:`\omega_i = 1 - |\max_{k \in P_{y_i}} g^s_{ik} - \max_{k \in
    P_{y_i}} g^t_{ik}|`, detached; 1 where the class has no prototype.

    Args:
        g_s (Tensor): (N, K) student similarities to the prototypes.
        g_t (Tensor): (N, K) teacher similarities.
        own (Tensor): (N, K) bool, prototype ``k`` is valid and of instance ``i``'s class.

    Returns:
        Tensor: (N,) weights.
    """
    has = own.any(1)
    q_s = g_s.detach().masked_fill(~own, float('-inf')).amax(1)
    q_t = g_t.detach().masked_fill(~own, float('-inf')).amax(1)
    diff = torch.where(has, (q_s - q_t).abs(), torch.zeros_like(q_s))
    return 1 - diff


def global_knowledge_loss(g_s: Tensor, g_t: Tensor, weight: Tensor, inst_mask: Tensor,
                          proto_valid: Tensor) -> Tensor:
    r""":math:`L_{global} = \frac{1}{NK}\sum_{i,k} \mathrm{smooth}_{L1}(\omega_i g^s_{ik} -
    \omega_i g^t_{ik})` over the ``N`` instances of ``inst_mask`` and the ``K`` valid
    prototypes (smooth L1 with :math:`\beta = 1`).

    Args:
        g_s (Tensor): (R, K) student similarities (in the graph).
        g_t (Tensor): (R, K) teacher similarities (detached here).
        weight (Tensor): (R,) robustness :math:`\omega`.
        inst_mask (Tensor): (R,) bool, instances that count.
        proto_valid (Tensor): (K,) bool.

    Returns:
        Tensor: scalar; 0 (in the graph) without instances or prototypes.
    """
    w = weight.unsqueeze(1)
    per = F.smooth_l1_loss(w * g_s, w * g_t.detach(), reduction='none')
    mask = inst_mask.to(per.dtype).unsqueeze(1) * proto_valid.to(per.dtype).unsqueeze(0)
    return (per * mask).sum() / mask.sum().clamp(min=1)


@MODELS.register_module()
class ODGKLoss(RoICaptureMixin, BaseDistillLoss):
    """Global-knowledge distillation with paired prototypes (see the module docstring).

    Needs the FPN levels the RoI extractors read from both detectors (``fpn`` with
    ``levels=[0, 1, 2, 3]`` for P2-P5 Faster R-CNN).

    Args:
        rois (str): instances: ``'gt'`` (ground-truth boxes, the authors', default) or
            ``'sampled'`` (the student's positive sampled R-CNN RoIs of the step,
            captured by :meth:`student_context`; labels are their assigned classes).
        num_prototypes (int): prototypes per class ``T`` (authors: 10).
        alpha (float): PGM coefficient-tie weight (authors: 10).
        bank_size (int): instances kept per class for the PGM (authors: a pass over
            up to 800 images per class per epoch).
        update_interval (int): training steps between two prototype selections
            (the first one at the first training step).
        density_sigma (float), density_quantile (float): PGM candidate filter
            (authors: 0.1, 0.4).
        min_size (float): only instances wider and taller than this (input pixels)
            enter the bank (authors: 30); all instances are distilled.
        robust (bool): RDM weights (True) or 1 for every instance (ablation).
        local_weight (float): weight of the robust local term; 0 (default) leaves it
            out and then no adapter is built.
        num_classes (int, optional): default: the student's
            ``roi_head.bbox_head.num_classes``.
        roi_extractor (dict, optional): one RoI extractor for both sides; default each
            detector's own ``bbox_roi_extractor``.
        **kwargs: ``loss_weight`` (weight of :math:`L_{global}`; authors'
            ``pair_wise_factor`` 5), ``inputs``, ``adapter`` (for the local term,
            default 'auto'), ``resize_student``.

    Returns (forward): the weighted global loss, or ``dict(global=..., local=...)``
    when ``local_weight`` > 0.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 rois: str = 'gt',
                 num_prototypes: int = 10,
                 alpha: float = 10.0,
                 bank_size: int = 128,
                 update_interval: int = 100,
                 density_sigma: float = 0.1,
                 density_quantile: float = 0.4,
                 min_size: float = 30.0,
                 robust: bool = True,
                 local_weight: float = 0.0,
                 num_classes: Optional[int] = None,
                 roi_extractor: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if rois not in ODGK_ROIS:
            raise ValueError(f'ODGKLoss: rois must be one of {ODGK_ROIS}, got {rois!r}.')
        if num_prototypes < 1 or bank_size < 1 or update_interval < 1:
            raise ValueError(f'ODGKLoss: num_prototypes, bank_size and update_interval must be '
                             f'>= 1, got {num_prototypes}, {bank_size}, {update_interval}.')
        if not 0.0 <= density_quantile < 1.0:
            raise ValueError(f'ODGKLoss: density_quantile must be in [0, 1), got '
                             f'{density_quantile}.')
        if local_weight < 0:
            raise ValueError(f'ODGKLoss: local_weight must be >= 0, got {local_weight}.')
        self.rois = rois
        self.num_prototypes = int(num_prototypes)
        self.alpha = float(alpha)
        self.bank_size = int(bank_size)
        self.update_interval = int(update_interval)
        self.density_sigma = float(density_sigma)
        self.density_quantile = float(density_quantile)
        self.min_size = float(min_size)
        self.robust = bool(robust)
        self.local_weight = float(local_weight)
        self.num_classes = num_classes
        if self.local_weight == 0:
            self.feature_pairs = ()  # no adapter: nothing would train it
        self._extractor = None if roi_extractor is None else build_roi_extractor(roi_extractor)
        self._capture: Optional[RoICapture] = None
        self.bank: Optional[ClassFeatureBank] = None
        # (C * T, D_s), (C * T, D_t), (C * T,) bool, (C * T,) class of each prototype
        self.prototypes: Optional[Tuple[Tensor, Tensor, Tensor, Tensor]] = None
        self._steps = 0

    # ------------------------------------------------------------- checkpoints
    def get_extra_state(self) -> dict:
        """The PGM state (bank, prototypes, step count) for checkpoints: a resumed run
        continues with the prototypes it had, as the authors' per-epoch regeneration
        would (their prototypes are rebuilt from the checkpointed detectors)."""
        return dict(
            bank=None if self.bank is None else self.bank.state(),
            prototypes=self.prototypes,
            steps=self._steps)

    def set_extra_state(self, state: dict) -> None:
        bank = state.get('bank')
        self.bank = None if bank is None else ClassFeatureBank.from_state(bank)
        prototypes = state.get('prototypes')
        self.prototypes = None if prototypes is None else tuple(prototypes)
        self._steps = int(state.get('steps', 0))

    def captures_rois(self) -> bool:
        """Only the options that pool on the student's RoIs need them."""
        return self.rois == 'sampled'

    # --------------------------------------------------------------- prototypes
    def update_prototypes(self) -> None:
        """PGM on the bank: re-select the paired prototypes of every class."""
        bank = self.bank
        if bank is None or not bank.filled():
            return
        M = bank.size
        t_bank, s_bank, valid = bank.feats_a[:, :M], bank.feats_b[:, :M], bank.valid[:, :M]
        cand = density_candidates(t_bank, s_bank, valid, self.density_sigma, self.density_quantile)
        idx, ok = select_prototypes(
            t_bank, s_bank, cand, self.num_prototypes, self.alpha, valid=valid)
        C, T = idx.shape
        p_t = t_bank.gather(1, idx.unsqueeze(-1).expand(-1, -1, t_bank.shape[2]))
        p_s = s_bank.gather(1, idx.unsqueeze(-1).expand(-1, -1, s_bank.shape[2]))
        cls = torch.arange(C, device=idx.device).repeat_interleave(T)
        self.prototypes = (p_s.reshape(C * T, -1), p_t.reshape(C * T, -1), ok.reshape(-1), cls)

    def _num_classes(self, student) -> int:
        if self.num_classes is not None:
            return int(self.num_classes)
        head = getattr(getattr(student, 'roi_head', None), 'bbox_head', None)
        if head is None or not hasattr(head, 'num_classes'):
            raise ValueError('ODGKLoss: give num_classes=... (the student has no '
                             'roi_head.bbox_head.num_classes).')
        return int(head.num_classes)

    # ------------------------------------------------------------------ forward
    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                student, teacher) -> Union[Tensor, Dict[str, Tensor]]:
        if self.rois == 'sampled':
            if self._capture is None:
                RoICapture().take(who='ODGKLoss')  # raises the explanatory error
            record = self._capture.take(gt_instances, who='ODGKLoss')
            rois, labels = select_rois('sampled', record)
            inst = record.pos
        else:
            rois, labels = select_rois('gt', None, gt_instances)
            inst = torch.ones_like(labels, dtype=torch.bool)
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        ext = self._extractor if self._extractor is not None else getattr(
            getattr(student, 'roi_head', None), 'bbox_roi_extractor', None)
        num_levels = len(ext.featmap_strides) if ext is not None else len(s_feats)
        if len(s_feats) != num_levels:
            raise ValueError(f'ODGKLoss: {len(s_feats)} FPN levels recorded but the RoI '
                             f'extractor reads {num_levels}; record exactly those levels '
                             f'(recorders=dict(fpn=dict(source=\'neck\', '
                             f'levels={list(range(num_levels))}))).')
        device = s_feats[0].device
        rois, labels, inst = rois.to(device), labels.to(device), inst.to(device)
        s_maps, t_maps = pool_teacher_student(s_feats, t_feats, rois, student, teacher,
                                              self._extractor)
        s_vec, t_vec = s_maps.mean((2, 3)), t_maps.mean((2, 3)).detach()

        weight = s_vec.new_ones(s_vec.shape[0])
        glob = s_vec.sum() * 0
        if self.prototypes is not None:
            if self.prototypes[0].device != device:  # restored from a CPU checkpoint
                self.prototypes = tuple(p.to(device) for p in self.prototypes)
            p_s, p_t, p_ok, p_cls = self.prototypes
            g_s = prototype_similarity(s_vec, p_s, p_ok)
            g_t = prototype_similarity(t_vec, p_t, p_ok)
            if self.robust:
                own = p_ok.unsqueeze(0) & (p_cls.unsqueeze(0) == labels.unsqueeze(1))
                weight = robustness(g_s, g_t, own)
            glob = global_knowledge_loss(g_s, g_t, weight, inst, p_ok)

        if self.training:  # PGM bookkeeping after the loss: this step's prototypes are older
            if self.bank is None:
                self.bank = ClassFeatureBank(self._num_classes(student), self.bank_size)
            wh = rois[:, 3:5] - rois[:, 1:3]
            big = inst & (wh > self.min_size).all(1)
            self.bank.push(t_vec, s_vec.detach(), labels, big)
            if self._steps % self.update_interval == 0:
                self.update_prototypes()
            self._steps += 1

        out = self.loss_weight * glob
        if self.local_weight == 0:
            return out
        s_maps_ad = s_maps
        if 's_feats' in self.adapters or self._needs_resize.get('s_feats'):
            s_ad = self.adapt('s_feats', s_feats, t_feats)
            s_maps_ad = pool_teacher_student(s_ad, t_feats, rois, student, teacher,
                                             self._extractor)[0]
        if s_maps_ad.shape != t_maps.shape:
            raise ValueError(f'ODGKLoss: the local term needs student RoI features of the '
                             f'teacher\'s shape, got {tuple(s_maps_ad.shape)} vs '
                             f'{tuple(t_maps.shape)}; set adapter=\'auto\'.')
        per = (s_maps_ad - t_maps.detach()).pow(2).flatten(1).mean(1)
        m = inst.to(per.dtype)
        local = (weight * per * m).sum() / m.sum().clamp(min=1)
        return {'global': out, 'local': self.local_weight * local}
