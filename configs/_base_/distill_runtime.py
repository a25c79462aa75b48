# Runtime pieces shared by every distillation config.
default_scope = 'mmkd_det'
# Evaluate the teacher once before training; logged as teacher/<metric>.
custom_hooks = [dict(type='TeacherEvalHook')]
