r"""FGD: Focal and Global Knowledge Distillation for Detectors (Yang et al., CVPR 2022).

`Paper <https://arxiv.org/abs/2111.11837>`_, code ``yzd-v/FGD``
(``mmdet/distillation/losses/fgd.py``, ``FeatureLoss``: one per FPN level).
Per level, student ``S`` (through the adapter, a 1x1 conv only when the channels
differ) and teacher ``T`` of shape (N, C, H, W):

* Focal distillation.

  - Binary and scale masks from the GT boxes: inside a box the value is
    ``1 / (H_r W_r)`` (the box's area in cells; overlapping boxes take the
    maximum, so small boxes win), ``M_fg`` below; background
    ``M_bg = 1[M_fg = 0] / N_bg`` with ``N_bg`` the number of background cells
    of that image. See :func:`fgd_masks` for the cell rule.
  - Spatial and channel attention with temperature ``T_a``:
    ``A^S(F) = H W softmax_{hw}(mean_c |F| / T_a)``,
    ``A^C(F) = C softmax_c(mean_{hw} |F| / T_a)`` (:func:`fgd_attention`).
  - Feature loss with the teacher's attention on both nets:

    .. math::
        L_{fg} = \frac{1}{N} \sum_{n,c,h,w} M_{fg} A^S(T) A^C(T) (S - T)^2, \quad
        L_{bg} = \frac{1}{N} \sum_{n,c,h,w} M_{bg} A^S(T) A^C(T) (S - T)^2

  - Attention loss (L1; the student's attention is not detached, so it is
    trained towards the teacher's):
    ``L_at = (sum |A^C(S) - A^C(T)| + sum |A^S(S) - A^S(T)|) / N``.

* Global distillation: a GcBlock ``R(F) = F + W_{v2} ReLU(LN(W_{v1}
  sum_j softmax_j(W_k F) F_j))`` per net (both trainable, the teacher's one fed
  the detached teacher features),
  ``L_rel = sum (R_S(S) - R_T(T))^2 / N``. ``W_k`` Kaiming (fan_in) and
  ``W_{v2}`` zero at init, so initially ``L_rel = ||S - T||^2 / N``.
  mmcv's ``ContextBlock(C, ratio=0.5)`` is exactly this block (same layers,
  same init), so it is used.

Total ``alpha L_fg + beta L_bg + gamma L_at + lambda L_rel`` per level, summed
over levels (each term returned separately). ``N`` is the number of images.

Equation numbers are not cited: the paper text is not among ``../shared/papers``;
the formulas above are the paper's method section as the authors' code computes
it. The one departure from that code is an option: ``box_scale`` (the frame GT
boxes are scaled from, :class:`FGDLoss`).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import ContextBlock
from torch import Tensor, nn

from mmkd_det.registry import MODELS
from ..utils import pad_gt
from .base_distill_loss import BaseDistillLoss, Shapes

#: The authors' config hyper-parameters (``configs/distillers/fgd``). ``retinanet``
#: (the default) is also their GFL setting; ``faster_rcnn`` hooks P2-P5 only.
PRESETS: Dict[str, dict] = dict(
    retinanet=dict(temperature=0.5, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6),
    gfl=dict(temperature=0.5, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6),
    fcos=dict(temperature=0.8, alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4, lambda_fgd=8e-6),
    faster_rcnn=dict(
        temperature=0.5, alpha_fgd=5e-5, beta_fgd=2.5e-5, gamma_fgd=5e-5, lambda_fgd=5e-7),
)
BOX_SCALES = ('batch_input_shape', 'img_shape')


def fgd_attention(feat: Tensor, temperature: float) -> Tuple[Tensor, Tensor]:
    """Spatial (N, H, W) and channel (N, C) attention of focal distillation:
    ``H W softmax_{hw}(mean_c |F| / T)`` and ``C softmax_c(mean_{hw} |F| / T)``.
    Each sums to H W, resp. C, per image. Not detached."""
    n, c, h, w = feat.shape
    value = feat.abs()
    spatial = h * w * torch.softmax((value.mean(dim=1) / temperature).reshape(n, -1), dim=1)
    channel = c * torch.softmax(value.mean(dim=(2, 3)) / temperature, dim=1)
    return spatial.reshape(n, h, w), channel


def fgd_masks(boxes: Tensor, valid: Tensor, featmap_size: Tuple[int, int],
              frame_hw: Tensor) -> Tuple[Tensor, Tensor]:
    """Foreground scale mask and normalised background mask of one level (focal distillation).

    Boxes are mapped to cells by ``x W / frame_w``, ``y H / frame_h``; the box
    covers the rows ``floor(y1) .. ceil(y2)`` and columns ``floor(x1) .. ceil(x2)``,
    both ends **inclusive** (the authors' window, one cell larger than the box at
    the bottom and the right), clipped to the map. Its value is
    ``1 / ((ceil(y2) - floor(y1) + 1) (ceil(x2) - floor(x1) + 1))``, the size of
    the unclipped window as in the authors' code (a box touching the bottom or
    right border counts the cell past the border). Overlaps take the maximum.
    ``bg = 1[fg == 0]`` divided by its sum per image (left 0 when the whole image
    is foreground).

    Vectorised over images and boxes: a (B, G, H, W) window test, max over G.

    Args:
        boxes (Tensor): (B, G, 4) xyxy in the input frame; ``valid`` (B, G).
        featmap_size: (H, W).
        frame_hw (Tensor): (B, 2) height and width of the frame the feature map
            spans (``batch_input_shape``; ``img_shape`` reproduces the original).

    Returns:
        tuple[Tensor, Tensor]: fg and bg masks, (B, H, W) each.
    """
    h, w = featmap_size
    batch = boxes.shape[0]
    if boxes.shape[1] == 0:
        fg = boxes.new_zeros(batch, h, w)
    else:
        sy = (h / frame_hw[:, 0].to(boxes))[:, None]
        sx = (w / frame_hw[:, 1].to(boxes))[:, None]
        wmin, wmax = torch.floor(boxes[..., 0] * sx), torch.ceil(boxes[..., 2] * sx)
        hmin, hmax = torch.floor(boxes[..., 1] * sy), torch.ceil(boxes[..., 3] * sy)
        area = 1.0 / ((hmax + 1 - hmin) * (wmax + 1 - wmin)).clamp(min=1)  # (B, G)
        ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype)
        xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype)
        rows = (ys >= hmin[..., None]) & (ys <= hmax[..., None])  # (B, G, H)
        cols = (xs >= wmin[..., None]) & (xs <= wmax[..., None])  # (B, G, W)
        inside = rows[..., :, None] & cols[..., None, :] & valid[..., None, None]
        fg = torch.where(inside, area[..., None, None], boxes.new_zeros(())).amax(dim=1)
    bg = (fg == 0).to(fg.dtype)
    bg = bg / bg.sum(dim=(1, 2), keepdim=True).clamp(min=1)
    return fg, bg


@MODELS.register_module()
class FGDLoss(BaseDistillLoss):
    r"""Focal and global distillation on every recorded level.

    Returns ``dict(loss_fg, loss_bg, loss_at, loss_rel)``: ``alpha_fgd`` x sum over
    levels of L_fg, and likewise with ``beta_fgd``, ``gamma_fgd``, ``lambda_fgd``,
    each times ``loss_weight``; their sum is the FGD loss.

    Args:
        preset (str): defaults of the five hyper-parameters below, one of
            :data:`PRESETS` (the authors' configs). Defaults to ``'retinanet'``:
            temperature 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6.
        temperature (float, optional): attention temperature.
        alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd (float, optional): weights
            of L_fg, L_bg, L_at, L_rel (names as the authors' configs). Given
            values override the preset. ``lambda_fgd=0`` builds no GcBlocks.
        box_scale (str): frame the GT boxes are scaled from onto each feature map.
            ``'batch_input_shape'`` (default): the padded batch the features are
            computed on, so boxes land on their cells. ``'img_shape'``: the
            unpadded image, the original code (boxes stretched by
            ``batch / image`` size whenever an image is padded; kept to reproduce it).
        **kwargs: ``loss_weight``, ``inputs``, ``adapter`` (default ``'auto'``:
            a 1x1 conv only when the channels differ, as the authors' ``align``),
            ``resize_student``.
    """

    default_inputs = dict(s_feats='student.fpn', t_feats='teacher.fpn')
    feature_pairs = (('s_feats', 't_feats'), )
    default_adapter = 'auto'

    def __init__(self,
                 preset: str = 'retinanet',
                 temperature: Optional[float] = None,
                 alpha_fgd: Optional[float] = None,
                 beta_fgd: Optional[float] = None,
                 gamma_fgd: Optional[float] = None,
                 lambda_fgd: Optional[float] = None,
                 box_scale: str = 'batch_input_shape',
                 **kwargs):
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ValueError(f'FGDLoss preset={preset!r}; choose one of {sorted(PRESETS)}.')
        if box_scale not in BOX_SCALES:
            raise ValueError(f'FGDLoss box_scale={box_scale!r}; choose one of {BOX_SCALES}.')
        given = dict(
            temperature=temperature,
            alpha_fgd=alpha_fgd,
            beta_fgd=beta_fgd,
            gamma_fgd=gamma_fgd,
            lambda_fgd=lambda_fgd)
        values = {k: float(PRESETS[preset][k] if v is None else v) for k, v in given.items()}
        if values['temperature'] <= 0:
            raise ValueError(f'FGDLoss temperature must be > 0, got {values["temperature"]}.')
        for key in ('alpha_fgd', 'beta_fgd', 'gamma_fgd', 'lambda_fgd'):
            if values[key] < 0:
                raise ValueError(f'FGDLoss {key} must be >= 0, got {values[key]}.')
        self.temperature = values['temperature']
        self.alpha_fgd, self.beta_fgd = values['alpha_fgd'], values['beta_fgd']
        self.gamma_fgd, self.lambda_fgd = values['gamma_fgd'], values['lambda_fgd']
        self.box_scale = box_scale
        self.gc_student = nn.ModuleList()
        self.gc_teacher = nn.ModuleList()

    def setup(self, shapes: Shapes, name: str = '') -> None:
        """Adapters (base class) and one GcBlock pair per level on the teacher's C."""
        super().setup(shapes, name)
        if self.lambda_fgd > 0:
            channels = [s[1] for s in shapes['t_feats']]
            # mmcv's GcBlock, one per level and model
            self.gc_student = nn.ModuleList(ContextBlock(c, ratio=0.5) for c in channels)
            self.gc_teacher = nn.ModuleList(ContextBlock(c, ratio=0.5) for c in channels)

    # ----------------------------------------------------------------- masks
    def _frames(self, batch_img_metas: Sequence[dict], batch: int, device) -> Tensor:
        if batch_img_metas is None or len(batch_img_metas) != batch:
            raise ValueError(f'FGDLoss needs batch_img_metas for each of the {batch} images '
                             f'(got {None if batch_img_metas is None else len(batch_img_metas)}).')
        frames = []
        for i, meta in enumerate(batch_img_metas):
            if self.box_scale not in meta:
                raise ValueError(f'FGDLoss box_scale={self.box_scale!r} but image {i} meta has '
                                 f'no {self.box_scale!r} (keys {sorted(meta)}).')
            frames.append([float(v) for v in meta[self.box_scale][:2]])
        return torch.tensor(frames, device=device)

    @torch.no_grad()
    def masks(self, t_feats: Sequence[Tensor], gt_instances,
              batch_img_metas) -> Tuple[List[Tensor], List[Tensor]]:
        """Per-level (B, H, W) foreground and background masks."""
        batch = t_feats[0].shape[0]
        if len(gt_instances) != batch:
            raise ValueError(f'FGDLoss: {len(gt_instances)} gt_instances for a batch of '
                             f'{batch} images.')
        device = t_feats[0].device
        frames = self._frames(batch_img_metas, batch, device)
        gt, _, valid = pad_gt(gt_instances, device)
        pairs = [fgd_masks(gt, valid, tuple(t.shape[-2:]), frames) for t in t_feats]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def visual_maps(self, t_feats, gt_instances, batch_img_metas,
                    **unused) -> Dict[str, List[Tensor]]:
        """Per-level (B, H, W): fg scale mask, bg mask, teacher spatial attention."""
        fg, bg = self.masks(t_feats, gt_instances, batch_img_metas)
        att = [fgd_attention(t.detach(), self.temperature)[0] for t in t_feats]
        return {
            'foreground scale mask': fg,
            'background mask': bg,
            'teacher spatial attention A^S(T)': att
        }

    # --------------------------------------------------------------- forward
    def forward(self, s_feats: Sequence[Tensor], t_feats: Sequence[Tensor], *, gt_instances,
                batch_img_metas) -> Dict[str, Tensor]:
        s_feats, t_feats = self.level_pairs(s_feats, t_feats)
        if self.lambda_fgd > 0 and len(self.gc_student) != len(t_feats):
            raise RuntimeError(f'FGDLoss has {len(self.gc_student)} GcBlock pairs for '
                               f'{len(t_feats)} levels; call setup() with the feature shapes '
                               f'(the Distiller does at build time).')
        fg_masks, bg_masks = self.masks(t_feats, gt_instances, batch_img_metas)
        s_feats = self.adapt('s_feats', s_feats, t_feats)
        terms: Dict[str, List[Tensor]] = dict(fg=[], bg=[], at=[], rel=[])
        for lvl, (s, t, fg, bg) in enumerate(zip(s_feats, t_feats, fg_masks, bg_masks)):
            if s.shape != t.shape:
                raise ValueError(f'FGDLoss: level {lvl}: adapted student {tuple(s.shape)} vs '
                                 f'teacher {tuple(t.shape)}.')
            t = t.detach()
            n = t.shape[0]
            sp_t, ch_t = fgd_attention(t, self.temperature)
            sp_s, ch_s = fgd_attention(s, self.temperature)
            # sum_c ch_t (S - T)^2 as one batched product, then the (N, H, W)
            # weights: the same sums as weighting the (N, C, H, W) tensor, with
            # two full-size temporaries fewer
            per_cell = torch.einsum('nchw,nc->nhw', (s - t).pow(2), ch_t) * sp_t
            terms['fg'].append((per_cell * fg).sum() / n)
            terms['bg'].append((per_cell * bg).sum() / n)
            terms['at'].append(((ch_s - ch_t).abs().sum() + (sp_s - sp_t).abs().sum()) / n)
            if self.lambda_fgd > 0:
                rel = self.gc_student[lvl](s.contiguous()) - \
                    self.gc_teacher[lvl](t.contiguous())
                terms['rel'].append(rel.pow(2).sum() / n)
            else:
                terms['rel'].append(s.new_zeros(()))
        weights = dict(fg=self.alpha_fgd, bg=self.beta_fgd, at=self.gamma_fgd, rel=self.lambda_fgd)
        return {
            f'loss_{k}': self.loss_weight * weights[k] * torch.stack(v).sum()
            for k, v in terms.items()
        }
