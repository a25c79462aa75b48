from .data_preprocessor import DistillDataPreprocessor, same_preprocessing
from .distiller import Distiller, load_model_cfg
from .teacher_loading import load_teacher_checkpoint

__all__ = ['Distiller', 'DistillDataPreprocessor', 'load_model_cfg',
           'load_teacher_checkpoint', 'same_preprocessing']
