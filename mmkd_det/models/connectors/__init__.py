from .level_adapters import LevelAdapters

__all__ = ['LevelAdapters']
