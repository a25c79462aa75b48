from .base_distill_loss import BaseDistillLoss
from .cwd_loss import CWDLoss
from .defeat_loss import DeFeatLoss
from .fgd_loss import FGDLoss
from .fgfi_loss import FGFILoss
from .fitnet_loss import FitNetLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .ld_loss import LDLoss
from .logit_kd_loss import LogitKDLoss
from .mgd_loss import MGDLoss
from .pkd_loss import PKDLoss
from .skd_loss import SKDLoss
from .tid_loss import TIDLoss

__all__ = [
    'BaseDistillLoss', 'CWDLoss', 'DeFeatLoss', 'FGDLoss', 'FGFILoss', 'FitNetLoss',
    'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness', 'LDLoss', 'LogitKDLoss', 'MGDLoss',
    'PKDLoss', 'SKDLoss', 'TIDLoss'
]
