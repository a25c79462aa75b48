from .export import export_student, student_checkpoint
from .preflight import PreflightError, check_config, missing_data

__all__ = ['export_student', 'student_checkpoint', 'PreflightError', 'check_config',
           'missing_data']
