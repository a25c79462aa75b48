from .level_adapters import LevelAdapters
from .non_local import SubsampledNonLocal2d

__all__ = ['LevelAdapters', 'SubsampledNonLocal2d']
