from .base_distill_loss import BaseDistillLoss
from .frs_loss import FRSFeatureLoss, FRSHeadLoss, feature_richness

__all__ = ['BaseDistillLoss', 'FRSFeatureLoss', 'FRSHeadLoss', 'feature_richness']
