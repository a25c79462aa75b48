from .distill_diagnostics_hook import DistillDiagnosticsHook, loss_totals
from .distill_schedule_hook import DistillationScheduleHook
from .teacher_eval_hook import TeacherEvalHook
from .utils import unwrap_model

__all__ = [
    'DistillDiagnosticsHook', 'DistillationScheduleHook', 'TeacherEvalHook', 'loss_totals',
    'unwrap_model'
]
