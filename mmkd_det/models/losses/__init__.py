from .base_distill_loss import BaseDistillLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness
from .tid_loss import TIDLoss

__all__ = ['BaseDistillLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness', 'TIDLoss']
