from .calibration import LossCalibration, build_calibration
from .data_preprocessor import DistillDataPreprocessor, same_preprocessing
from .distiller import Distiller
from .model_config import (SHIPPED_PREFIX, load_config, load_model_cfg, resolve_config_path,
                           shipped_configs_dir)
from .records import EXTRA_INPUTS, bind_loss_inputs
from .schedule import DistillSchedule
from .teacher import fold_teacher_bn, inherit_teacher_weights, record_forward, teacher_forward
from .teacher_loading import load_teacher_checkpoint
from .visualization import loss_visual_maps

__all__ = [
    'Distiller', 'DistillDataPreprocessor', 'DistillSchedule', 'EXTRA_INPUTS', 'LossCalibration',
    'SHIPPED_PREFIX', 'bind_loss_inputs', 'build_calibration', 'fold_teacher_bn',
    'inherit_teacher_weights', 'load_config', 'load_model_cfg', 'load_teacher_checkpoint',
    'loss_visual_maps', 'record_forward', 'resolve_config_path', 'same_preprocessing',
    'shipped_configs_dir', 'teacher_forward'
]
