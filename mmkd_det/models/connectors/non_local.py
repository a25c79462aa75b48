"""mmcv's 2-D non-local block with keys/values sub-sampled by one max-pool of any stride."""
from typing import Dict, Optional

import torch
from mmcv.cnn import NonLocal2d
from torch import Tensor, nn

from mmkd_det.registry import MODELS


@MODELS.register_module()
class SubsampledNonLocal2d(NonLocal2d):
    """Non-local block (Wang et al., CVPR 2018) whose keys (phi) and values (g)
    are max-pooled by ``sub_sample`` before the pairwise function.

    The relation matrix of a level with ``H x W`` positions is
    ``(H W) x (H W / sub_sample^2)``: at COCO size (1333 x 800) P2 has 67k
    positions, a full matrix 17.9 GB per image in fp32, 280 MB with stride 8.
    ``mode`` is any of mmcv's four pairwise functions (embedded Gaussian, dot
    product, Gaussian, concatenation; Table IX of Structured KD). With
    ``zeros_init`` (default) the output BN is zero-initialised, so the block is
    the identity ``x + W(y) = x`` at initialisation.

    mmcv's own ``sub_sample=True`` is a fixed 2x2 pool; mmrazor's FBKD
    connector adds a second pool of ``maxpool_stride`` on top of it (effective
    stride doubled). Here there is exactly one pool of the requested stride.

    Args:
        in_channels (int): channels of the input.
        sub_sample (int): max-pool kernel/stride on keys and values; 1 = none.
        reduction (int): ``inter_channels = in_channels // reduction``.
        mode (str): ``'embedded_gaussian'``, ``'dot_product'``, ``'gaussian'``
            or ``'concatenation'``.
        norm_cfg (dict, optional): norm after the output conv. Defaults to BN.
        zeros_init (bool): zero the output norm (identity at init).
        ceil_mode (bool): pool windows cover odd borders (a 7-wide level keeps
            4 keys at stride 2, never 0). mmcv, mmrazor and the authors' code
            round down (3 keys); set False to reproduce them on odd sizes.
            Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 sub_sample: int = 1,
                 reduction: int = 2,
                 mode: str = 'embedded_gaussian',
                 norm_cfg: Optional[Dict] = dict(type='BN'),
                 zeros_init: bool = True,
                 ceil_mode: bool = True,
                 **kwargs):
        sub_sample = int(sub_sample)
        if sub_sample < 1:
            raise ValueError(f'sub_sample must be a stride >= 1, got {sub_sample}.')
        super().__init__(
            in_channels,
            sub_sample=False,
            reduction=reduction,
            mode=mode,
            norm_cfg=norm_cfg,
            zeros_init=zeros_init,
            **kwargs)
        self.stride = sub_sample
        self.ceil_mode = ceil_mode
        if sub_sample > 1:
            # mmcv's forward reads phi(x) for the Gaussian mode only when sub_sample is set
            self.sub_sample = True
            pool = nn.MaxPool2d(kernel_size=sub_sample, stride=sub_sample, ceil_mode=ceil_mode)
            self.g = nn.Sequential(self.g, pool)
            self.phi = pool if mode == 'gaussian' else nn.Sequential(self.phi, pool)

    def concatenation(self, theta_x: Tensor, phi_x: Tensor) -> Tensor:
        """mmcv's concatenation pairwise function without its (2 C_i, HW, K) tensor.

        ``concat_project`` is a bias-free 1x1 conv on ``[theta_i; phi_j]`` then
        ReLU, so ``f_ij = ReLU(w_theta . theta_i + w_phi . phi_j) / K``: two
        projections and a broadcast sum give mmcv's values with an (HW, K)
        matrix only. theta_x: (N, C_i, HW, 1), phi_x: (N, C_i, 1, K).
        """
        weight = self.concat_project.conv.weight.flatten()  # (2 C_i,)
        c = theta_x.shape[1]
        a = torch.einsum('nchk,c->nh', theta_x, weight[:c])  # (N, HW)
        b = torch.einsum('nchk,c->nk', phi_x, weight[c:])  # (N, K)
        pairwise = self.concat_project.activate(a[:, :, None] + b[:, None, :])
        return pairwise / pairwise.shape[-1]

    def relation_bytes(self,
                       height: int,
                       width: int,
                       batch: int = 1,
                       bytes_per_element: int = 4) -> int:
        """Size of one pairwise matrix (Eq. 5's ``f``) for an ``H x W`` input."""
        if self.ceil_mode:
            keys = -(-height // self.stride) * -(-width // self.stride)
        else:
            keys = (height // self.stride) * (width // self.stride)
        return batch * height * width * keys * bytes_per_element
