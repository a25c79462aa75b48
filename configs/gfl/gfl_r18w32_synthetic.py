# GFL student on the embedded synthetic data: ResNet-18 with 32 base channels,
# 64-channel FPN/head; the RetinaNet student's data and schedule.
_base_ = [
    '../_base_/models/gfl_tiny.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
