from .base_distill_loss import BaseDistillLoss
from .cwd_loss import CWDLoss
from .defeat_loss import DeFeatLoss
from .dkd_loss import DKDLoss
from .drkd_loss import DRKDLoss
from .dsig_loss import DSIGLoss
from .fgd_loss import FGDLoss
from .fgfi_loss import FGFILoss
from .fitnet_loss import FitNetLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .gdetkd_loss import GDetKDLoss
from .gid_loss import GIDLoss
from .icd_loss import PFILoss, RankMimickingLoss
from .ld_loss import LDLoss
from .logit_kd_loss import LogitKDLoss
from .mgd_loss import MGDLoss
from .mimic_loss import MimicLoss
from .odgk_loss import ODGKLoss
from .pad_loss import PADLoss
from .pkd_loss import PKDLoss
from .review_kd_loss import ReviewKDLoss
from .skd_loss import SKDLoss
from .ssim_kd_loss import SSIMKDLoss
from .tadf_loss import TADFLoss
from .tid_loss import TIDLoss

__all__ = [
    'GDetKDLoss', 'DRKDLoss', 'DSIGLoss', 'GIDLoss', 'ODGKLoss', 'PFILoss', 'RankMimickingLoss',
    'DKDLoss', 'MimicLoss', 'BaseDistillLoss', 'CWDLoss', 'DeFeatLoss', 'FGDLoss', 'FGFILoss',
    'FitNetLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness', 'LDLoss', 'LogitKDLoss',
    'MGDLoss', 'PKDLoss', 'SKDLoss', 'TIDLoss', 'ReviewKDLoss', 'SSIMKDLoss', 'PADLoss', 'TADFLoss'
]
