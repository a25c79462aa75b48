from .build import build_distiller
from .export import export_student, student_checkpoint
from .preflight import PreflightError, check_config, missing_data

__all__ = ['build_distiller', 'export_student', 'student_checkpoint', 'PreflightError', 'check_config',
           'missing_data']
