from .build import build_distiller, build_distiller_and_batch, build_loader, first_batch
from .cpu_heap import keep_freed_memory
from .export import export_student, student_checkpoint
from .preflight import PreflightError, check_config, missing_data

__all__ = [
    'build_distiller', 'build_distiller_and_batch', 'build_loader', 'first_batch', 'export_student',
    'student_checkpoint', 'PreflightError', 'check_config', 'missing_data', 'keep_freed_memory'
]
