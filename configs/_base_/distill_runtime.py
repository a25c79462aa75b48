# Runtime pieces shared by every distillation config. (Each config sets
# `default_scope = 'mmkd_det'` itself: mmengine rejects a key defined by two bases.)
# Evaluate the teacher once before training; logged as teacher/<metric>.
custom_hooks = [dict(type='TeacherEvalHook')]
