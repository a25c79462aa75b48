"""mmkd_det: knowledge distillation for MMDetection 3.x detectors."""
from .compat import apply_patches

__version__ = '0.1.0'

apply_patches()

__all__ = ['__version__', 'apply_patches']
