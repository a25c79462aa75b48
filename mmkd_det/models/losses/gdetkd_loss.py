r"""G-DetKD: Yao, Pi, Xu, Zhang, Li, Zhang, "G-DetKD: Towards General Distillation
Framework for Object Detectors via Contrastive and Semantic-guided Feature Imitation"
(ICCV 2021).

`Paper <https://arxiv.org/abs/2108.07482>`_; no official code (a third-party
re-implementation exists in LutingWang's ``todd`` library, ``SGFILoss`` / ``CKDLoss``,
used by the HEAD repository's ``configs/kd/gdet*.py``).

Two terms on instance features of RoIs (ground-truth boxes by default):

* **SGFI** (semantic-guided feature imitation): the student's RoI feature is taken from
  *every* FPN level, :math:`S^l_i` (through a 1x1 adaptation per level), the teacher's
  from the level its RoI extractor assigns, :math:`T_i`. A small embedding network
  :math:`\phi` (two 3x3 stride-2 convolutions with ReLU, shared by both sides) gives the
  level weights by soft matching, and the student's aggregate imitates the teacher:

  .. math::
      w^l_i = \mathrm{softmax}_l\big(\phi(S^l_i)^\top \phi(T_i) / \tau\big),\qquad
      L_{SGFI} = \mathrm{MSE}\Big(\sum_l w^l_i S^l_i,\ T_i\Big)

  with a learnable temperature :math:`\tau` (initialised to 1) and the mean over
  RoIs, channels and bins.

* **CKD** (contrastive knowledge distillation): InfoNCE over instance embeddings
  :math:`q_i` (student, through a linear projection onto the teacher's width, L2
  normalised) and keys :math:`k_j` (teacher, normalised): the positive of instance
  ``i`` is the teacher's embedding of the same instance, the negatives the teacher's
  embeddings of the other instances of the batch and of a memory of past batches,

  .. math::
      L_{CKD} = -\frac{1}{N}\sum_i \log
      \frac{\exp(q_i^\top k_i / \gamma)}{\sum_{j \in \mathcal{K}_i} \exp(q_i^\top k_j / \gamma)}

  :math:`\gamma = 0.07`; RoIs of the same image overlapping the instance with IoU >
  0.5 are not negatives. The embedding is the R-CNN box head's shared-fc output
  (``ckd_feature='rcnn'``) or the mean-pooled RoI feature (``'roi'``).

The paper's text could not be read in this environment (only its abstract): the
formulas, the embedding network (256 -> 128 -> 64 channels), :math:`\tau` = 1 learnable,
:math:`\gamma` = 0.07, the IoU 0.5 exclusion, the memory and the weights (SGFI 1, CKD
0.5) are those of the third-party re-implementation, not checked against the paper;
equation numbers are not cited. Whether :math:`\mathcal{K}_i` contains the positive
is an option (``ckd_denominator``): ``'all'`` (standard InfoNCE, default) or
``'negatives'`` (the re-implementation).
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from ..utils.roi_instance_features import (level_strides_from, pool_every_level,
                                           roi_head_embeddings, same_image_ious)
from ..utils.roi_records import RoICapture, RoICaptureMixin, pool_roi_features, select_rois
from .base_distill_loss import BaseDistillLoss

GDETKD_ROIS = ('gt', 'sampled')
CKD_FEATURES = ('rcnn', 'roi')
CKD_DENOMINATORS = ('all', 'negatives')


class SGFIEmbedding(nn.Module):
    r""":math:`\phi`: two 3x3 stride-2 convolutions with ReLU, then a mean over the
    remaining positions (7x7 -> 3x3 -> 1x1 for RoIAlign 7)."""

    def __init__(self, in_channels: int, hidden_channels: int = 128, out_channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_channels, 3, stride=2)
        self.conv2 = nn.Conv2d(hidden_channels, out_channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """(R, C, S, S) -> (R, out_channels); S >= 7."""
        return F.relu(self.conv2(F.relu(self.conv1(x)))).mean((2, 3))


def sgfi_level_weights(e_s: Tensor, e_t: Tensor, tau: Tensor) -> Tensor:
    r""":math:`w^l_i = \mathrm{softmax}_l(\phi(S^l_i)^\top \phi(T_i) / \tau)`.

    Args:
        e_s (Tensor): (L, R, D) student embeddings per level.
        e_t (Tensor): (R, D) teacher embeddings.
        tau (Tensor): scalar temperature.

    Returns:
        Tensor: (L, R), summing to 1 over L.
    """
    return torch.softmax((e_s * e_t.unsqueeze(0)).sum(-1) / tau, dim=0)


def sgfi_loss(s_levels: Tensor, t_rois: Tensor, weights: Tensor) -> Tensor:
    r""":math:`\mathrm{MSE}(\sum_l w^l_i S^l_i, T_i)`, mean over RoIs, channels, bins.

    Args:
        s_levels (Tensor): (L, R, C, S, S) adapted student RoI features of every level.
        t_rois (Tensor): (R, C, S, S) teacher RoI features (detached here).
        weights (Tensor): (L, R).

    Returns:
        Tensor: scalar.
    """
    fused = (weights[:, :, None, None, None] * s_levels).sum(0)
    return F.mse_loss(fused, t_rois.detach())


def ckd_loss(q: Tensor,
             k: Tensor,
             ignore: Tensor,
             memory: Optional[Tensor] = None,
             temperature: float = 0.07,
             denominator: str = 'all') -> Tensor:
    r""":math:`L_{CKD}` (module docstring) on normalised embeddings.

    Args:
        q (Tensor): (N, D) student queries, L2-normalised.
        k (Tensor): (N, D) teacher keys of the same instances, L2-normalised (detached
            here).
        ignore (Tensor): (N, N) bool, pairs that are not negatives (the diagonal is
            handled by ``denominator``).
        memory (Tensor, optional): (Q, D) normalised teacher keys of past batches.
        temperature (float): :math:`\gamma`.
        denominator (str): 'all' (positive included) or 'negatives'.

    Returns:
        Tensor: scalar, mean over the N instances (those without any key in the
        denominator, possible with 'negatives', are left out).
    """
    if denominator not in CKD_DENOMINATORS:
        raise ValueError(f'ckd_denominator must be one of {CKD_DENOMINATORS}, got '
                         f'{denominator!r}.')
    k = k.detach()
    logits = q @ k.t() / temperature  # (N, N)
    eye = torch.eye(q.shape[0], dtype=torch.bool, device=q.device)
    drop = ignore & ~eye
    if denominator == 'negatives':
        drop = drop | eye
    pos = logits.diagonal()
    batch = logits.masked_fill(drop, float('-inf'))
    if memory is not None and memory.shape[0]:
        batch = torch.cat([batch, q @ memory.detach().t() / temperature], 1)
    lse = torch.logsumexp(batch, 1)
    has = torch.isfinite(lse)  # 'negatives' without any negative: the row is left out
    per = torch.where(has, lse - pos, torch.zeros_like(pos))
    return per.sum() / has.sum().clamp(min=1)


@MODELS.register_module()
class GDetKDLoss(RoICaptureMixin, BaseDistillLoss):
    """SGFI and CKD on RoIs of a two-stage pair (see the module docstring).

    Needs every FPN level of both detectors (``fpn=dict(source='neck')``, P2-P6 for
    mmdet's Faster R-CNN): the student's RoIs are pooled from all of them, the
    teacher's by its own RoI extractor (P2-P5).

    Args:
        rois (str): ``'gt'`` (ground-truth boxes, default) or ``'sampled'`` (the
            student's sampled R-CNN RoIs of the step, captured by :meth:`student_context`).
        sgfi_weight (float): weight of ``loss_sgfi``; 0 leaves it out (no adapter, no
            embedding network built).
        ckd_weight (float): weight of ``loss_ckd``; 0 leaves it out.
        embed_channels (tuple): hidden and output widths of :math:`\\phi` (128, 64).
        tau (float): initial SGFI temperature (learnable).
        ckd_feature (str): 'rcnn' (R-CNN shared-fc output, default) or 'roi' (mean
            RoI feature of the assigned level).
        ckd_channels (tuple): (student, teacher) widths of the 'rcnn' embedding
            (mmdet's ``fc_out_channels``, default (1024, 1024)); 'roi' takes the FPN widths.
        ckd_temperature (float): :math:`\\gamma` (0.07).
        ckd_iou_ignore (float): same-image RoIs with IoU above it are not negatives.
        ckd_denominator (str): 'all' (default) or 'negatives'.
        memory_size (int): teacher keys of past batches kept as negatives (0: none).
        strides (list[int], optional): strides of the recorded student levels; default
            the student's RoI extractor strides extended by doubling (4, ..., 64).
        **kwargs: ``loss_weight`` (multiplies both terms), ``inputs``, ``adapter``
            (default ``dict(kernel_size=1)``: the re-implementation's 1x1 adaptation),
            ``resize_student``.

    Returns (forward): ``dict(loss_sgfi=..., loss_ckd=...)`` (the terms with a non-zero
    weight).
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=1)

    def __init__(self,
                 rois: str = 'gt',
                 sgfi_weight: float = 1.0,
                 ckd_weight: float = 0.5,
                 embed_channels: Tuple[int, int] = (128, 64),
                 tau: float = 1.0,
                 ckd_feature: str = 'rcnn',
                 ckd_channels: Tuple[int, int] = (1024, 1024),
                 ckd_temperature: float = 0.07,
                 ckd_iou_ignore: float = 0.5,
                 ckd_denominator: str = 'all',
                 memory_size: int = 1024,
                 strides: Optional[Sequence[int]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if rois not in GDETKD_ROIS:
            raise ValueError(f'GDetKDLoss: rois must be one of {GDETKD_ROIS}, got {rois!r}.')
        if ckd_feature not in CKD_FEATURES:
            raise ValueError(f'GDetKDLoss: ckd_feature must be one of {CKD_FEATURES}, got '
                             f'{ckd_feature!r}.')
        if ckd_denominator not in CKD_DENOMINATORS:
            raise ValueError(f'GDetKDLoss: ckd_denominator must be one of {CKD_DENOMINATORS}, '
                             f'got {ckd_denominator!r}.')
        if sgfi_weight < 0 or ckd_weight < 0 or (sgfi_weight == 0 and ckd_weight == 0):
            raise ValueError(f'GDetKDLoss: sgfi_weight and ckd_weight must be >= 0 and not both '
                             f'0, got {sgfi_weight}, {ckd_weight}.')
        if memory_size < 0 or ckd_temperature <= 0:
            raise ValueError(f'GDetKDLoss: memory_size must be >= 0 and ckd_temperature > 0, '
                             f'got {memory_size}, {ckd_temperature}.')
        self.rois = rois
        self.sgfi_weight, self.ckd_weight = float(sgfi_weight), float(ckd_weight)
        self.embed_channels = tuple(embed_channels)
        self.tau_init = float(tau)
        self.ckd_feature = ckd_feature
        self.ckd_channels = tuple(ckd_channels)
        self.ckd_temperature = float(ckd_temperature)
        self.ckd_iou_ignore = float(ckd_iou_ignore)
        self.ckd_denominator = ckd_denominator
        self.memory_size = int(memory_size)
        self.strides = None if strides is None else [int(s) for s in strides]
        if self.sgfi_weight == 0:
            self.feature_pairs = ()  # nothing would train an adapter
        self.embed: Optional[nn.Module] = None
        self.tau: Optional[nn.Parameter] = None
        self.ckd_proj: Optional[nn.Module] = None
        self._capture: Optional[RoICapture] = None
        self._memory: Optional[Tensor] = None
        self._mem_ptr = 0
        self._mem_count = 0

    def setup(self, shapes, name: str = '') -> None:
        """Adapters (base class), then :math:`\\phi`, :math:`\\tau` and the CKD projection
        from the recorded widths."""
        super().setup(shapes, name)
        self.build_modules(shapes['s_feats'][0][1], shapes['t_feats'][0][1])

    def build_modules(self, s_channels: int, t_channels: int) -> None:
        """Create the trainable modules for FPN widths ``s_channels`` -> ``t_channels``
        (called by :meth:`setup`; call it directly to use the loss without a Distiller)."""
        if self.sgfi_weight > 0:
            self.embed = SGFIEmbedding(t_channels, *self.embed_channels)
            self.tau = nn.Parameter(torch.tensor(self.tau_init))
        if self.ckd_weight > 0:
            dims = self.ckd_channels if self.ckd_feature == 'rcnn' else (s_channels, t_channels)
            self.ckd_proj = nn.Linear(dims[0], dims[1], bias=False)

    def captures_rois(self) -> bool:
        """Only the options that pool on the student's RoIs need them."""
        return self.rois == 'sampled'

    # ------------------------------------------------------------------ memory
    def _push_memory(self, keys: Tensor) -> None:
        """Ring of the last ``memory_size`` teacher keys (host-side pointer: sizes only)."""
        Q = self.memory_size
        if Q == 0 or keys.shape[0] == 0:
            return
        keys = keys.detach()[-Q:]
        if self._memory is None or self._memory.shape[1] != keys.shape[1]:
            self._memory = keys.new_zeros(Q, keys.shape[1])
            self._mem_ptr = self._mem_count = 0
        n = keys.shape[0]
        idx = (torch.arange(n, device=keys.device) + self._mem_ptr) % Q
        # out of place: this step's loss still reads the previous memory in backward
        self._memory = self._memory.index_copy(0, idx, keys.to(self._memory))
        self._mem_ptr = (self._mem_ptr + n) % Q
        self._mem_count = min(Q, self._mem_count + n)

    def memory(self) -> Optional[Tensor]:
        """The valid keys of the memory (Q', D), or None."""
        if self._memory is None or self._mem_count == 0:
            return None
        return self._memory[:self._mem_count]

    # ------------------------------------------------------------------ forward
    def _extractor(self, model, role):
        ext = getattr(getattr(model, 'roi_head', None), 'bbox_roi_extractor', None)
        if ext is None:
            raise TypeError(f'GDetKDLoss: the {role} ({type(model).__name__}) has no '
                            f'roi_head.bbox_roi_extractor; G-DetKD here needs a two-stage pair.')
        return ext

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                student, teacher) -> Dict[str, Tensor]:
        if (self.sgfi_weight > 0 and self.embed is None) or (self.ckd_weight > 0
                                                             and self.ckd_proj is None):
            raise RuntimeError('GDetKDLoss: its modules are built by setup (the Distiller calls '
                               'it at build); call build_modules(s_channels, t_channels) first.')
        if self.rois == 'sampled':
            if self._capture is None:
                RoICapture().take(who='GDetKDLoss')  # raises the explanatory error
            rois, _ = select_rois('sampled', self._capture.take(gt_instances, who='GDetKDLoss'))
        else:
            rois, _ = select_rois('gt', None, gt_instances)
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        s_ext, t_ext = self._extractor(student, 'student'), self._extractor(teacher, 'teacher')
        rois = rois.to(s_feats[0].device).float()
        num = rois.shape[0]
        zero = sum(f.sum() for f in s_feats) * 0
        out = {}
        with torch.no_grad():
            t_rois = pool_roi_features(t_ext, [t.detach() for t in t_feats], rois)
        if self.sgfi_weight > 0:
            s_ad = self.adapt('s_feats', s_feats, t_feats)
            strides = self.strides or level_strides_from(s_ext, len(s_ad))
            layer = t_ext.roi_layers[0]
            size = layer.output_size
            size = size[0] if isinstance(size, (tuple, list)) else size
            s_levels = pool_every_level(s_ad, rois, strides, size,
                                        getattr(layer, 'sampling_ratio', 0),
                                        getattr(layer, 'aligned', True))
            if num == 0:
                out['loss_sgfi'] = zero + s_levels.sum() * 0 + sum(
                    p.sum() for p in self.embed.parameters()) * 0 + self.tau * 0
            else:
                L = s_levels.shape[0]
                e_s = self.embed(s_levels.flatten(0, 1)).view(L, num, -1)
                e_t = self.embed(t_rois)
                weights = sgfi_level_weights(e_s, e_t, self.tau)
                out['loss_sgfi'] = self.sgfi_weight * sgfi_loss(s_levels, t_rois, weights)
        if self.ckd_weight > 0:
            s_pool = pool_roi_features(s_ext, s_feats, rois)
            if self.ckd_feature == 'rcnn':
                s_emb = roi_head_embeddings(student, s_pool)
                t_emb = roi_head_embeddings(teacher, t_rois, grad=False)
            else:
                s_emb, t_emb = s_pool.mean((2, 3)), t_rois.mean((2, 3))
            if s_emb.shape[1] != self.ckd_proj.in_features or \
                    t_emb.shape[1] != self.ckd_proj.out_features:
                raise ValueError(f'GDetKDLoss: CKD embeddings of width {s_emb.shape[1]} '
                                 f'(student) and {t_emb.shape[1]} (teacher) but '
                                 f'ckd_channels={self.ckd_channels}; set ckd_channels to the '
                                 f'R-CNN heads\' fc_out_channels.')
            q = F.normalize(self.ckd_proj(s_emb), dim=1)
            k = F.normalize(t_emb.detach(), dim=1)
            if num == 0:
                out['loss_ckd'] = zero + q.sum() * 0
            else:
                ignore = same_image_ious(rois) > self.ckd_iou_ignore
                value = ckd_loss(q, k, ignore, self.memory(), self.ckd_temperature,
                                 self.ckd_denominator)
                out['loss_ckd'] = self.ckd_weight * value
            if self.training:
                self._push_memory(k)
        return {key: self.loss_weight * v for key, v in out.items()}
