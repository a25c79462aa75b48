# The student baseline of the RetinaNet R101 -> R50 COCO configs: mmdet's
# RetinaNet R50 2x unchanged, so `tools/train.py` and `tools/analysis_tools/benchmark.py
# --preset coco_retina` can run it next to the distilled students.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'
default_scope = 'mmkd_det'
# stop on a NaN/inf loss or weights before a checkpoint is written from them
default_hooks = dict(nonfinite_guard=dict(type='NonFiniteGuardHook'))
