from .base_distill_loss import BaseDistillLoss
from .cwd_loss import CWDLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .ld_loss import LDLoss
from .logit_kd_loss import LogitKDLoss
from .mgd_loss import MGDLoss
from .pkd_loss import PKDLoss
from .skd_loss import SKDLoss
from .tid_loss import TIDLoss

__all__ = ['BaseDistillLoss', 'CWDLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness',
           'LDLoss', 'LogitKDLoss', 'MGDLoss', 'PKDLoss', 'SKDLoss', 'TIDLoss']
