# Student on the embedded synthetic data: RTMDet (CSPNeXt, widen 0.125, deepen 0.167)
# with a 32-channel CSPNeXtPAFPN and head. 128 px images, batch 8, CPU, 5 epochs.
_base_ = [
    '../_base_/models/rtmdet_synthetic.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
