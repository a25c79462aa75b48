# Runtime pieces shared by every distillation config. (Each config sets
# `default_scope = 'mmkd_det'` itself: mmengine rejects a key defined by two bases.)
custom_hooks = [
    # evaluate the teacher once before training; logged as teacher/<metric>
    dict(type='TeacherEvalHook'),
    # hand the runner's iter/epoch to the Distiller's warmup_iters / stop_epoch
    dict(type='DistillationScheduleHook'),
    # log distill_ratio (distillation / task loss); warn once if off by > 100x
    dict(type='DistillDiagnosticsHook'),
    # stop on a NaN/inf task or distillation loss, or on non-finite weights, before
    # a checkpoint is written from them (also in default_runtime's default_hooks,
    # for the plain detectors: only the first one registered acts)
    dict(type='NonFiniteGuardHook'),
]
