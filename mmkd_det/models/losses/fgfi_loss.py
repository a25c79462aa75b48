r"""FGFI: Distilling Object Detectors with Fine-grained Feature Imitation
(Wang, Yuan, Zhang, Feng; CVPR 2019).

`Paper <https://arxiv.org/abs/1906.03609>`_, code
``twangnh/Distilling-Object-Detectors`` (faster-rcnn.pytorch, one VGG conv5
level, batch 1 per GPU). The student imitates the teacher only near objects:

* Imitation region estimation: for every GT box the IoU map with all anchors;
  ``psi = thr_factor x max IoU`` of that box (``thr_factor`` 0.5 in the paper);
  a feature location is on for that box when any of its anchors has IoU
  ``> psi``; the mask ``I`` is the union over boxes.
* Fine-grained feature imitation loss:

  .. math::
      l = \frac{1}{2 N_p} \sum_{l,n,i,j} I_{l,nij} \sum_c
          \big(f_{adap}(s)_{l,ncij} - t_{l,ncij}\big)^2, \qquad
      N_p = \sum_{l,n,i,j} I_{l,nij}

  times ``loss_weight`` (λ, 0.01 in the authors' VGG runs).

Multi-level (FPN) port: each level's locations are tested against that level's
anchors, with ``psi`` from the maximum over the anchors of **all** levels
(``gt_levels='all'``, default), so a box is imitated where its best anchors
are, on whichever levels. ``gt_levels='roi'`` is DeFeat's FPN re-implementation
of FGFI (``get_roi_mask``, its ``mask-neck-roi`` setting): every box is first
assigned to one level by the RoI rule
(:func:`~mmkd_det.models.utils.map_gt_levels`) and only that level's anchors
give ``psi`` and the mask. ``N_p`` counts the masked
locations of all levels and images (``normalize='all'``, the single-level
formula read over every imitated location); ``'level'`` normalises each level by
its own count and sums the levels.

Anchors: ``prior_generator.grid_priors`` of the student's dense head
(``bbox_head``, or ``rpn_head`` for two-stage detectors), every anchor
including those crossing the image border. Shapes: ``B`` images, ``G`` GT boxes
per image (zero-padded), ``P`` anchors of all levels, ``A`` anchors per location.

Equation numbers are not cited: the paper text is not among ``../shared/papers``;
the formulas above are the paper's method section as the authors' code computes
it. Departures from that code, each an option of :class:`FGFILoss`:

* Anchor-GT IoU (``iou_legacy_offset``): the authors' ``bbox_overlaps_batch``
  (faster-rcnn.pytorch) adds 1 to every width and height and to the overlap's
  sides (``w = x2 - x1 + 1``). The default ``False`` follows mmdet >= 2
  (``w = x2 - x1``), the convention of the anchors and boxes it receives;
  ``True`` reproduces the authors. An independent check found the masks of
  the two differ in about a third of random batches (an anchor whose IoU is
  near ``psi`` crosses it). Example: GT ``[0, 0, 4, 4]`` with an anchor equal
  to it (IoU 1, so ``psi = 0.5``) and an anchor ``[0, 0, 8, 4]``: IoU
  16 / 32 = 0.5, not above ``psi``, by default; 25 / 45 = 0.556 with the offset.
* RoI level rule of ``gt_levels='roi'`` (``level_legacy_offset``): DeFeat's
  ``_map_roi_levels`` takes ``sqrt((w + 1)(h + 1))``; default ``sqrt(w h)``.
* Adapter (``adapter``): the authors' is a 3x3 conv + ReLU on post-ReLU VGG
  features; the default drops the ReLU (FPN features are signed, as DeFeat's
  FPN re-implementation), ``adapter=dict(kernel_size=3, relu=True)`` keeps it.
* Several levels (the original has one VGG level): ``gt_levels`` and
  ``normalize`` above.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmkd_det.registry import MODELS
from ..utils import (check_level_strides, init_adapters, level_strides, map_gt_levels, pad_gt,
                     prior_ious)
from ..utils.uncertainty_weighting import ElementErrors
from .base_distill_loss import BaseDistillLoss, Shapes

GT_LEVELS = ('all', 'roi')
NORMALIZE = ('all', 'level')


def imitation_masks(priors: Sequence[Tensor],
                    featmap_sizes: Sequence[Tuple[int, int]],
                    gt: Tensor,
                    valid: Tensor,
                    thr_factor: float = 0.5,
                    gt_levels: Optional[Tensor] = None,
                    iou_legacy_offset: bool = False) -> List[Tensor]:
    """FGFI imitation masks I (imitation region estimation), one (B, H, W) float 0/1 map per level.

    Args:
        priors (list[Tensor]): per level (H * W * A, 4) anchors, location-major
            (mmdet ``grid_priors`` order: the A anchors of a location are adjacent).
        featmap_sizes: (H, W) per level.
        gt (Tensor): (B, G, 4) xyxy GT boxes; ``valid`` (B, G) marks real ones.
        thr_factor (float): psi = thr_factor x the box's max IoU.
        gt_levels (Tensor, optional): (B, G) level of each box; when given a box
            only uses (and only marks) the anchors of its level.
        iou_legacy_offset (bool): anchor-GT IoU with the +1 on widths and
            heights of the authors' ``bbox_overlaps_batch``, see
            :func:`~mmkd_det.models.utils.prior_ious`.
    """
    batch, num_gt = gt.shape[:2]
    out_shapes = [(batch, h, w) for h, w in featmap_sizes]
    if num_gt == 0 or not bool(valid.any()):
        return [gt.new_zeros(s) for s in out_shapes]
    counts = [p.shape[0] for p in priors]
    anchors = torch.cat(list(priors)).to(gt)
    iou = prior_ious(anchors, gt, legacy_offset=iou_legacy_offset)  # (B, P, G)
    allowed = valid[:, None, :]
    if gt_levels is not None:
        prior_level = torch.repeat_interleave(
            torch.arange(len(counts), device=gt.device), torch.tensor(counts, device=gt.device))
        allowed = allowed & (prior_level[None, :, None] == gt_levels[:, None, :])
    iou = iou.masked_fill(~allowed, -1.0)
    psi = thr_factor * iou.amax(dim=1, keepdim=True)  # (B, 1, G)
    on = ((iou > psi) & allowed).any(dim=-1)  # (B, P)
    masks = []
    for chunk, (h, w), n in zip(on.split(counts, dim=1), featmap_sizes, counts):
        if n % (h * w):
            raise ValueError(f'FGFILoss: {n} anchors for a {h}x{w} level; the prior '
                             f'generator and the features disagree.')
        masks.append(chunk.view(batch, h, w, n // (h * w)).any(-1).to(gt.dtype))
    return masks


@MODELS.register_module()
class FGFILoss(BaseDistillLoss):
    r"""Fine-grained feature imitation loss on FPN levels, times ``loss_weight``.

    See the module docstring for the mask and the normaliser.

    Args:
        thr_factor (float): the ψ factor of the imitation region, in [0, 1). Defaults to 0.5.
        gt_levels (str): ``'all'`` (default) or ``'roi'`` (DeFeat's FPN variant).
        finest_scale (float), level_offset (int): the RoI level rule of
            ``gt_levels='roi'``, see :func:`~mmkd_det.models.utils.map_gt_levels`.
        level_legacy_offset (bool): that rule on ``sqrt((w + 1)(h + 1))`` as
            DeFeat's code. Defaults to False (``sqrt(w h)``).
        iou_legacy_offset (bool): anchor-GT IoU with the +1 on widths and
            heights of the authors' code. Defaults to False (mmdet >= 2
            IoU); see the module docstring.
        normalize (str): ``'all'`` (default) or ``'level'``.
        head (str, optional): dense head attribute with the anchor generator;
            default ``bbox_head``, else ``rpn_head``.
        adapter_init_std (float | None): adapter weight init (truncated normal,
            1e-4 as the authors); None keeps PyTorch's default.
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default a 3x3 conv per
            level without activation: the authors' adapter is 3x3 + ReLU on
            post-ReLU VGG features, but FPN features are signed, so the ReLU is
            dropped as in DeFeat's FPN re-implementation;
            ``adapter=dict(kernel_size=3, relu=True)`` keeps it), ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=3)

    def __init__(self,
                 thr_factor: float = 0.5,
                 gt_levels: str = 'all',
                 finest_scale: float = 56.0,
                 level_offset: int = 0,
                 level_legacy_offset: bool = False,
                 iou_legacy_offset: bool = False,
                 normalize: str = 'all',
                 head: Optional[str] = None,
                 adapter_init_std: Optional[float] = 1e-4,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0 <= thr_factor < 1:
            raise ValueError(f'FGFILoss thr_factor must be in [0, 1) (IoU > thr_factor x '
                             f'max IoU; 1 would select nothing), got {thr_factor}.')
        for key, value, allowed in (('gt_levels', gt_levels, GT_LEVELS), ('normalize', normalize,
                                                                          NORMALIZE)):
            if value not in allowed:
                raise ValueError(f'FGFILoss {key}={value!r}; choose one of {allowed}.')
        self.thr_factor, self.gt_levels, self.normalize = float(thr_factor), gt_levels, normalize
        self.finest_scale, self.level_offset = float(finest_scale), int(level_offset)
        self.level_legacy_offset = bool(level_legacy_offset)
        self.iou_legacy_offset = bool(iou_legacy_offset)
        self.head, self.adapter_init_std = head, adapter_init_std

    def setup(self, shapes: Shapes, name: str = '') -> None:
        super().setup(shapes, name)
        init_adapters(self.adapters, self.adapter_init_std)

    def _prior_generator(self, student):
        names = (self.head, ) if self.head else ('bbox_head', 'rpn_head')
        for name in names:
            gen = getattr(getattr(student, name, None), 'prior_generator', None)
            if gen is not None:
                return gen
        raise ValueError(f'FGFILoss needs the anchors of a dense head ({" or ".join(names)} '
                         f'with a prior_generator) on the student; '
                         f'{type(student).__name__} has none.')

    @torch.no_grad()
    def masks(self,
              t_feats: Sequence[Tensor],
              gt_instances,
              student,
              batch_img_metas=None) -> List[Tensor]:
        """Per-level (B, H, W) imitation masks I."""
        if len(gt_instances) != t_feats[0].shape[0]:
            raise ValueError(f'FGFILoss: {len(gt_instances)} gt_instances for a batch of '
                             f'{t_feats[0].shape[0]} images.')
        gen = self._prior_generator(student)
        sizes = [tuple(f.shape[-2:]) for f in t_feats]
        if gen.num_levels != len(sizes):
            raise ValueError(f'FGFILoss: {len(sizes)} recorded levels but the anchor generator '
                             f'has {gen.num_levels}; record the neck levels the head reads.')
        strides = level_strides(gen.strides)
        check_level_strides(t_feats, strides, batch_img_metas, 'FGFILoss')
        device = t_feats[0].device
        priors = gen.grid_priors(sizes, device=device)
        if priors[0].shape[-1] != 4:
            raise ValueError(f'FGFILoss needs anchor boxes; {type(gen).__name__} gives '
                             f'{priors[0].shape[-1]}-d points (anchor-free head such as '
                             f'FCOS). Use an anchor-based student head.')
        gt, _, valid = pad_gt(gt_instances, device)
        levels = None
        if self.gt_levels == 'roi':
            levels = map_gt_levels(gt, len(sizes), self.finest_scale, self.level_offset,
                                   self.level_legacy_offset)
        return imitation_masks(priors, sizes, gt, valid, self.thr_factor, levels,
                               self.iou_legacy_offset)

    def visual_maps(self,
                    t_feats,
                    gt_instances,
                    student,
                    batch_img_metas=None,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W) imitation mask I."""
        return {'imitation mask I': self.masks(t_feats, gt_instances, student, batch_img_metas)}

    def forward(self,
                s_feats: Sequence[Tensor],
                t_feats: Sequence[Tensor],
                *,
                gt_instances,
                student,
                batch_img_metas=None) -> Tensor:
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        masks = self.masks(t_feats, gt_instances, student, batch_img_metas)
        sums, counts = [], []
        for sq, m in zip(self.squared_error_maps(s_feats, t_feats), masks):
            sums.append((sq * m).sum())  # sq: (B, H, W)
            counts.append(m.sum())
        sums, counts = torch.stack(sums), torch.stack(counts)
        if self.normalize == 'all':
            loss = sums.sum() / (2 * counts.sum()).clamp(min=1)
        else:
            loss = (sums / (2 * counts).clamp(min=1)).sum()
        return self.loss_weight * loss

    def elementwise(self,
                    s_feats: Sequence[Tensor],
                    t_feats: Sequence[Tensor],
                    *,
                    gt_instances,
                    student,
                    batch_img_metas=None) -> ElementErrors:
        r"""The unreduced terms of :meth:`forward` (without ``loss_weight``), for a
        wrapper that reweights them (PAD): one group per level.

        Per level :math:`e_l = (f_{adap}(s)_l - t_l)^2` (B, C, H, W), weight the
        imitation mask :math:`I_l` (B, 1, H, W), normaliser :math:`2 N_p`
        (``normalize='all'``, the same for every level) or :math:`2 N_{p,l}`
        (``'level'``), at least 1; so that
        :func:`~mmkd_det.models.utils.reduce_element_errors` gives
        ``forward / loss_weight``.
        """
        s_feats, t_feats = self.adapted_pairs(s_feats, t_feats)
        masks = self.masks(t_feats, gt_instances, student, batch_img_metas)
        errors = []
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if s.shape != t.shape:
                raise ValueError(f'FGFILoss: level {lvl}: adapted student {tuple(s.shape)} vs '
                                 f'teacher {tuple(t.shape)}; let the Distiller call setup (it '
                                 f'builds the adapters) or set adapter / resize_student.')
            errors.append((s - t.detach()).pow(2))
        counts = [m.sum() for m in masks]
        if self.normalize == 'all':
            norms = [(2 * torch.stack(counts).sum()).clamp(min=1)] * len(masks)
        else:
            norms = [(2 * c).clamp(min=1) for c in counts]
        return ElementErrors(list(s_feats), errors, [m[:, None] for m in masks], norms)
