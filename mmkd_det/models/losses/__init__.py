from .base_distill_loss import BaseDistillLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .ld_loss import LDLoss
from .logit_kd_loss import LogitKDLoss
from .skd_loss import SKDLoss
from .tid_loss import TIDLoss

__all__ = ['BaseDistillLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness', 'LDLoss',
           'LogitKDLoss', 'SKDLoss',
           'TIDLoss']
