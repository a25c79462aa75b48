from .distill_diagnostics_hook import DistillDiagnosticsHook, loss_totals
from .distill_schedule_hook import DistillationScheduleHook
from .non_finite_guard_hook import NonFiniteGuardHook, non_finite_tensors
from .student_hook import StudentHook, StudentRunnerView
from .teacher_eval_hook import TeacherEvalHook
from .utils import logged_values, unwrap_model

__all__ = [
    'DistillDiagnosticsHook', 'DistillationScheduleHook', 'NonFiniteGuardHook', 'StudentHook',
    'StudentRunnerView', 'TeacherEvalHook', 'logged_values', 'loss_totals', 'non_finite_tensors',
    'unwrap_model'
]
