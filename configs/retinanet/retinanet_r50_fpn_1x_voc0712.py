# The student baseline of configs/frs/frs_retina_r101_r50_voc.py: mmdet's VOC 07+12
# RetinaNet R50 unchanged, so `tools/train.py` and `tools/analysis_tools/benchmark.py --preset
# voc_retina` can run it next to the distilled student.
_base_ = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'
default_scope = 'mmkd_det'
# stop on a NaN/inf loss or weights before a checkpoint is written from them
default_hooks = dict(nonfinite_guard=dict(type='NonFiniteGuardHook'))
