from .base_distill_loss import BaseDistillLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .skd_loss import SKDLoss
from .tid_loss import TIDLoss

__all__ = ['BaseDistillLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness', 'SKDLoss',
           'TIDLoss']
