r"""Structured KD: attention-guided and non-local distillation.

Zhang & Ma, "Structured Knowledge Distillation for Accurate and Efficient
Object Detection" (TPAMI 2023; journal version of FBKD, ICLR 2021), §III-C.
Shape shorthand per level: student ``s`` (N, C_s, H, W), teacher ``t``
(N, C, H, W), ``HW = H x W``.

* Eq. 1: spatial / channel attention ``G^s(A) = mean_c |A|`` (N, H, W) and
  ``G^c(A) = mean_{h,w} |A|`` (N, C).
* Eq. 2: masks ``M^s = HW softmax((G^s(A^S) + G^s(A^T)) / T)`` and
  ``M^c = C softmax((G^c(A^S) + G^c(A^T)) / T)`` (detached; each sums to
  HW, resp. C).
* Eq. 3: ``L_AT = L2(G^s(A^S), G^s(A^T)) + L2(G^c(A^S), G^c(A^T))`` with the
  student side through the §IV-G adapters (3x3 conv on the 1 x H x W spatial
  map, fully connected on the channel vector).
* Eq. 4: ``L_AM = (sum_{k,i,j} (A^T - A^S)^2 M^s_ij M^c_k)^(1/2)`` with the
  student through a 1x1 conv adapter.
* Eq. 5: relation ``r`` from a non-local block on each of teacher and
  student; ``L_NLD = L2(r^S, r^T)`` with a 1x1 adapter after the student's.
  Reading (as mmrazor's FBKD port): ``r`` is the *output of
  mmcv's residual non-local block*, ``r = A + BN(W y)`` with
  ``y_i = sum_j f(A_i, A_j) g(A_j)``, not the bare sum Eq. 5 prints
  (``1/(WH) sum_j f g``). The pairwise ``f`` is mmcv's: the embedded Gaussian
  is a softmax of ``theta^T phi / sqrt(C_i)`` (mmcv's ``use_scale``, ``C_i``
  the inter-channels), dot product and concatenation divide by the number of
  keys (Eq. 5's ``1/(WH)`` over the sub-sampled keys), the Gaussian is a
  plain softmax. The output BN is zero-initialised, so at the start
  ``r = A`` on both sides and ``L_NLD = ||a_nl(A^S) - A^T||_2``: plain feature
  imitation through the 1x1 adapter; it turns into relation distillation
  only as the output BN's scale leaves zero.
* Eq. 6: ``alpha L_AT + beta L_AM + gamma L_NLD``, summed over levels.

``L2(a, b)`` is read as the Euclidean distance ``||a - b||_2`` over the batch,
the square root Eq. 4 writes out and the authors' code computes
(``torch.dist``); Eq. 4's per-image root is likewise taken once over the batch,
as in their ``dist2``. All other readings and the authors'-code differences are
options below and are listed in configs/skd/README.md.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from ..connectors import SubsampledNonLocal2d
from .base_distill_loss import BaseDistillLoss

#: Named settings. ``paper_*``: §IV-A's hyper-parameters with Eqs. 2-4 as
#: written. ``authors_code_*``: the released mmdet-2 code (as ported by mmrazor's
#: FBKD): alpha and beta swapped relative to the text, the temperatures swapped
#: (two-stage 0.5, one-stage 0.1), masks as the mean of two softmaxes, L_AT on
#: plain (not absolute) pooled features, no channel mask in the two-stage L_AM,
#: dot-product non-local blocks. ``*_one_stage`` weights are the fork's x6.
PRESETS: Dict[str, dict] = dict(
    paper_two_stage=dict(
        alpha=7e-5,
        beta=4e-3,
        gamma=7e-5,
        temperature=0.1,
        mask_mode='softmax_of_sum',
        at_mode='attention',
        am_channel_mask=True,
        nonlocal_mode='embedded_gaussian'),
    paper_one_stage=dict(
        alpha=4e-4,
        beta=2e-2,
        gamma=4e-4,
        temperature=0.5,
        mask_mode='softmax_of_sum',
        at_mode='attention',
        am_channel_mask=True,
        nonlocal_mode='embedded_gaussian'),
    authors_code_two_stage=dict(
        alpha=4e-3,
        beta=7e-5,
        gamma=7e-5,
        temperature=0.5,
        mask_mode='mean_of_softmax',
        at_mode='pooled',
        am_channel_mask=False,
        nonlocal_mode='dot_product'),
    authors_code_one_stage=dict(
        alpha=2.4e-2,
        beta=4.2e-4,
        gamma=4.2e-4,
        temperature=0.1,
        mask_mode='mean_of_softmax',
        at_mode='pooled',
        am_channel_mask=True,
        nonlocal_mode='dot_product'),
)
MASK_MODES = ('softmax_of_sum', 'mean_of_softmax')
AT_MODES = ('attention', 'pooled')
ATTENTIONS = ('spatial', 'channel')
NONLOCAL_MODES = ('embedded_gaussian', 'dot_product', 'gaussian', 'concatenation')


def spatial_attention(feat: Tensor) -> Tensor:
    """Eq. 1, G^s: mean over channels of |A|; (N, C, H, W) -> (N, H, W)."""
    return feat.abs().mean(dim=1)


def channel_attention(feat: Tensor) -> Tensor:
    """Eq. 1, G^c: mean over H, W of |A|; (N, C, H, W) -> (N, C)."""
    return feat.abs().mean(dim=(2, 3))


def attention_mask(g_student: Tensor,
                   g_teacher: Tensor,
                   temperature: float,
                   mode: str = 'softmax_of_sum') -> Tensor:
    """Eq. 2 for either attention: ``D softmax((g_S + g_T) / T)`` over the last
    dims flattened, ``D`` their size (HW for spatial, C for channel), so the
    mask of each image sums to ``D``.

    ``mode='mean_of_softmax'``: ``D (softmax(g_S / T) + softmax(g_T / T)) / 2``,
    the prose of §III-A ("normalize ... then add them together and divide by
    2") and the authors' code. Same sum; summing first then dividing by T is
    the sharper mask (twice the logits).

    Args:
        g_student, g_teacher (Tensor): (N, H, W) or (N, C) attention.
        temperature (float): T.

    Returns:
        Tensor: detached mask of the inputs' shape.
    """
    n, shape = g_teacher.shape[0], g_teacher.shape
    gs, gt = g_student.detach().reshape(n, -1), g_teacher.detach().reshape(n, -1)
    size = gt.shape[1]
    if mode == 'softmax_of_sum':
        mask = torch.softmax((gs + gt) / temperature, dim=1)
    elif mode == 'mean_of_softmax':
        mask = (torch.softmax(gs / temperature, dim=1) + torch.softmax(gt / temperature, dim=1)) / 2
    else:
        raise ValueError(f'mask_mode must be one of {MASK_MODES}, got {mode!r}.')
    return (size * mask).reshape(shape)


def attention_masked_loss(s_feat: Tensor, t_feat: Tensor, spatial_mask: Optional[Tensor],
                          channel_mask: Optional[Tensor]) -> Tensor:
    """Eq. 4: ``sqrt(sum (A^T - A^S)^2 M^s_ij M^c_k)``, one root over the batch.

    Args:
        s_feat, t_feat (Tensor): adapted student and teacher, (N, C, H, W).
        spatial_mask (Tensor | None): (N, H, W); None = all ones.
        channel_mask (Tensor | None): (N, C); None = all ones.
    """
    # sqrt(sum d^2 M) = ||d sqrt(M)||_2; the norm has a finite (zero) gradient at
    # d = 0 where sqrt(sum) would give NaN (e.g. a student initialised from its teacher)
    diff = t_feat.detach() - s_feat
    if spatial_mask is not None:
        diff = diff * spatial_mask.sqrt()[:, None]
    if channel_mask is not None:
        diff = diff * channel_mask.sqrt()[:, :, None, None]
    return torch.linalg.vector_norm(diff.float())  # fp32: the sum of squares overflows fp16


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    """The paper's ``L2(a, b)`` (Eqs. 3, 5): ``||a - b||_2`` over all elements
    (``torch.dist`` of the authors' code; zero gradient at a = b)."""
    return torch.linalg.vector_norm((a - b).float())


def _per_level(value, num_levels: int, name: str) -> list:
    """An int for every level, or a per-level sequence (the last repeats)."""
    if isinstance(value, (int, float)):
        return [int(value)] * num_levels
    value = list(value)
    if not value:
        raise ValueError(f'nonlocal_cfg.{name} is empty.')
    return [value[min(i, len(value) - 1)] for i in range(num_levels)]


@MODELS.register_module()
class SKDLoss(BaseDistillLoss):
    """Structured KD (Eqs. 1-6), summed over the recorded levels.

    The trainable parts, all kept out of the exported student (§IV-G; the
    distillation checkpoint keeps them): per level a 1x1 conv on the student
    features (L_AM), a 3x3 conv 1->1 on the student spatial attention and a
    fully connected layer on its channel attention (L_AT), a non-local block
    on the student and one on the teacher features plus a 1x1 conv after the
    student's (L_NLD). The teacher's block is trained by L_NLD, as in the
    authors' code (the teacher network itself stays frozen).

    A term whose weight is 0 is not built and not computed (Table VII
    ablations); ``attention`` picks the attention types (Table VIII).

    Args:
        preset (str): one of :data:`PRESETS`; every explicit argument below
            overrides it. Defaults to ``'paper_two_stage'``.
        alpha, beta, gamma (float): weights of L_AT, L_AM, L_NLD (Eq. 6).
        temperature (float): T of Eq. 2.
        attention (Sequence[str]): subset of ``('spatial', 'channel')`` used in
            the masks of L_AM and the terms of L_AT.
        mask_mode (str): ``'softmax_of_sum'`` (Eq. 2) or ``'mean_of_softmax'``
            (prose, authors' code); see :func:`attention_mask`.
        at_mode (str): ``'attention'`` (Eq. 3: L_AT on G^s, G^c of Eq. 1) or
            ``'pooled'`` (authors' code: on mean_c A and mean_{h,w} A, no abs).
        am_channel_mask (bool): multiply L_AM by M^c (Eq. 4); the authors'
            two-stage code does not.
        nonlocal_mode (str): pairwise function of the non-local blocks
            (Table IX): ``'embedded_gaussian'``, ``'dot_product'``,
            ``'gaussian'``, ``'concatenation'``.
        nonlocal_cfg (dict): ``sub_sample`` (key/value max-pool stride) and
            ``reduction`` (channels / inter-channels), each an int or a
            per-level sequence (the last entry repeats). Defaults to the
            authors' FPN setting ``sub_sample=(8, 4, 2, 2, 2)``,
            ``reduction=(4, 4, 2, 2, 2)``, plus ``norm_cfg`` (BN) and
            ``ceil_mode`` (True: odd sizes round up, see
            :class:`SubsampledNonLocal2d`).
        vis_temperatures (Sequence[float]): extra T's of :meth:`visual_maps`
            (Fig. 4 shows 0.25, 0.5, 0.75, 1). Training does not use them.
        **kwargs: ``loss_weight`` (scales the whole of Eq. 6), ``inputs``,
            ``adapter`` (the L_AM adapter; default 1x1 conv always),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = dict(kernel_size=1)

    def __init__(self,
                 preset: str = 'paper_two_stage',
                 alpha: Optional[float] = None,
                 beta: Optional[float] = None,
                 gamma: Optional[float] = None,
                 temperature: Optional[float] = None,
                 attention: Sequence[str] = ATTENTIONS,
                 mask_mode: Optional[str] = None,
                 at_mode: Optional[str] = None,
                 am_channel_mask: Optional[bool] = None,
                 nonlocal_mode: Optional[str] = None,
                 nonlocal_cfg: Optional[dict] = None,
                 vis_temperatures: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                 **kwargs):
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ValueError(f'preset must be one of {sorted(PRESETS)}, got {preset!r}.')
        given = dict(
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            temperature=temperature,
            mask_mode=mask_mode,
            at_mode=at_mode,
            am_channel_mask=am_channel_mask,
            nonlocal_mode=nonlocal_mode)
        opts = dict(PRESETS[preset], **{k: v for k, v in given.items() if v is not None})
        self.preset = preset
        self.alpha, self.beta, self.gamma = (float(opts[k]) for k in ('alpha', 'beta', 'gamma'))
        self.temperature = float(opts['temperature'])
        self.mask_mode, self.at_mode = opts['mask_mode'], opts['at_mode']
        self.am_channel_mask = bool(opts['am_channel_mask'])
        self.nonlocal_mode = opts['nonlocal_mode']
        self.attention = (attention, ) if isinstance(attention, str) else tuple(attention)
        self.vis_temperatures = tuple(float(x) for x in vis_temperatures)
        if self.temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {self.temperature}.')
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f'mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}.')
        if self.nonlocal_mode not in NONLOCAL_MODES:
            raise ValueError(f'nonlocal_mode must be one of {NONLOCAL_MODES} (Table IX), '
                             f'got {self.nonlocal_mode!r}.')
        if self.at_mode not in AT_MODES:
            raise ValueError(f'at_mode must be one of {AT_MODES}, got {self.at_mode!r}.')
        if not self.attention or set(self.attention) - set(ATTENTIONS):
            raise ValueError(f'attention must be a non-empty subset of {ATTENTIONS}, '
                             f'got {attention!r}.')
        if min(self.alpha, self.beta, self.gamma) < 0 or \
                max(self.alpha, self.beta, self.gamma) == 0:
            raise ValueError('alpha, beta, gamma must be >= 0 and not all 0 '
                             f'(got {self.alpha}, {self.beta}, {self.gamma}).')
        nl = dict(sub_sample=(8, 4, 2, 2, 2), reduction=(4, 4, 2, 2, 2), norm_cfg=dict(type='BN'))
        nl.update(nonlocal_cfg or {})
        unknown = set(nl) - {'sub_sample', 'reduction', 'norm_cfg', 'ceil_mode'}
        if unknown:
            raise KeyError(f'nonlocal_cfg keys {sorted(unknown)} unknown; use sub_sample, '
                           f'reduction, norm_cfg, ceil_mode (the mode is nonlocal_mode).')
        self.nonlocal_cfg = nl

    # ------------------------------------------------------------------ build
    def setup(self, shapes, name: str = '') -> None:
        """Create the §IV-G adapters and the non-local blocks for the recorded levels."""
        super().setup(shapes, name)
        if self.beta == 0:  # L_AM off: no 1x1 feature adapter
            self.adapters = nn.ModuleDict()
        s_ch = [s[1] for s in shapes['s_feats']]
        t_ch = [s[1] for s in shapes['t_feats']]
        levels = len(t_ch)
        self.spatial_adapters = nn.ModuleList()
        self.channel_adapters = nn.ModuleList()
        if self.alpha > 0:
            if 'spatial' in self.attention:
                self.spatial_adapters = nn.ModuleList(
                    nn.Conv2d(1, 1, 3, padding=1) for _ in range(levels))
            if 'channel' in self.attention:
                self.channel_adapters = nn.ModuleList(
                    nn.Linear(cs, ct) for cs, ct in zip(s_ch, t_ch))
        self.student_nonlocal = nn.ModuleList()
        self.teacher_nonlocal = nn.ModuleList()
        self.nonlocal_adapters = nn.ModuleList()
        if self.gamma > 0:
            strides = _per_level(self.nonlocal_cfg['sub_sample'], levels, 'sub_sample')
            reductions = _per_level(self.nonlocal_cfg['reduction'], levels, 'reduction')
            for cs, ct, k, r in zip(s_ch, t_ch, strides, reductions):
                make = dict(
                    sub_sample=k,
                    reduction=r,
                    mode=self.nonlocal_mode,
                    norm_cfg=copy.deepcopy(self.nonlocal_cfg['norm_cfg']),
                    ceil_mode=self.nonlocal_cfg.get('ceil_mode', True))
                self.student_nonlocal.append(SubsampledNonLocal2d(cs, **make))
                self.teacher_nonlocal.append(SubsampledNonLocal2d(ct, **make))
                self.nonlocal_adapters.append(nn.Conv2d(cs, ct, 1))
        self._student_resize = self._needs_resize.get('s_feats', False)

    # ---------------------------------------------------------------- forward
    def _student_to_teacher_hw(self, x: Tensor, t: Tensor) -> Tensor:
        if self._student_resize and x.shape[-2:] != t.shape[-2:]:
            return F.interpolate(x, size=t.shape[-2:], mode='bilinear', align_corners=False)
        return x

    def masks(self,
              s: Tensor,
              t: Tensor,
              s_adapted: Optional[Tensor] = None) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """Eq. 2 masks (M^s (N, H, W), M^c (N, C)) of one level; None when that
        attention type is off. The student's channel attention comes from its
        adapted features when its channel count differs from the teacher's."""
        t = t.detach()
        m_s = m_c = None
        if 'spatial' in self.attention:
            g_s = spatial_attention(self._student_to_teacher_hw(s.detach(), t))
            m_s = attention_mask(g_s, spatial_attention(t), self.temperature, self.mask_mode)
        if 'channel' in self.attention:
            src = s if s.shape[1] == t.shape[1] else s_adapted
            if src is None:
                raise ValueError('SKDLoss: student and teacher channels differ; the channel '
                                 'mask needs the adapted student features.')
            m_c = attention_mask(
                channel_attention(src.detach()), channel_attention(t), self.temperature,
                self.mask_mode)
        return m_s, m_c

    def attention_transfer(self, lvl: int, s: Tensor, t: Tensor) -> Tensor:
        """Eq. 3 at one level (at_mode='pooled': the authors' pooled means)."""
        t = t.detach()
        pooled = self.at_mode == 'pooled'
        loss = s.new_zeros(())
        if 'spatial' in self.attention:
            g_s = s.mean(1) if pooled else spatial_attention(s)
            g_t = t.mean(1) if pooled else spatial_attention(t)
            g_s = self._student_to_teacher_hw(g_s[:, None], t)
            loss = loss + l2_distance(self.spatial_adapters[lvl](g_s), g_t[:, None])
        if 'channel' in self.attention:
            c_s = s.mean((2, 3)) if pooled else channel_attention(s)
            c_t = t.mean((2, 3)) if pooled else channel_attention(t)
            loss = loss + l2_distance(self.channel_adapters[lvl](c_s), c_t)
        return loss

    def nonlocal_distance(self, lvl: int, s: Tensor, t: Tensor) -> Tensor:
        """L_NLD (Eq. 5) at one level: relation r = the residual non-local block's
        output (equal to its input at initialisation, see the module docstring)."""
        r_s = self.nonlocal_adapters[lvl](self.student_nonlocal[lvl](s))
        r_t = self.teacher_nonlocal[lvl](t.detach())
        return l2_distance(self._student_to_teacher_hw(r_s, r_t), r_t)

    def terms(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Un-weighted L_AT, L_AM, L_NLD summed over levels (absent when off)."""
        s_feats, t_feats = list(s_feats), list(t_feats)
        adapted = self.adapt('s_feats', s_feats, t_feats) if self.beta > 0 else None
        out: Dict[str, List[Tensor]] = dict(at=[], am=[], nld=[])
        for lvl, (s, t) in enumerate(zip(s_feats, t_feats)):
            if self.beta > 0:
                m_s, m_c = self.masks(s, t, adapted[lvl])
                out['am'].append(
                    attention_masked_loss(adapted[lvl], t, m_s,
                                          m_c if self.am_channel_mask else None))
            if self.alpha > 0:
                out['at'].append(self.attention_transfer(lvl, s, t))
            if self.gamma > 0:
                out['nld'].append(self.nonlocal_distance(lvl, s, t))
        return {k: torch.stack(v).sum() for k, v in out.items() if v}

    def visual_maps(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor],
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (N, H, W) spatial masks M^s (Eq. 2) at this loss's T and at
        each of ``vis_temperatures`` (Fig. 4 of the paper)."""
        maps: Dict[str, List[Tensor]] = {}
        if 'spatial' not in self.attention:
            return maps
        temps = [self.temperature] + [x for x in self.vis_temperatures if x != self.temperature]
        for temp in temps:
            maps[f'M^s (Eq. 2), T={temp:g}'] = [
                attention_mask(
                    spatial_attention(self._student_to_teacher_hw(s, t)), spatial_attention(t),
                    temp, self.mask_mode) for s, t in zip(s_feats, t_feats)
            ]
        return maps

    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Eq. 6 as its three weighted terms (the Distiller logs each and sums them)."""
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        weights = dict(at=self.alpha, am=self.beta, nld=self.gamma)
        return {
            f'loss_{k}': self.loss_weight * weights[k] * v
            for k, v in self.terms(s_feats, t_feats).items()
        }


__all__ = [
    'SKDLoss', 'PRESETS', 'spatial_attention', 'channel_attention', 'attention_mask',
    'attention_masked_loss', 'l2_distance'
]
