# Student on the embedded synthetic data: YOLOX (CSPDarknet, widen 0.125, deepen 0.33)
# with a 32-channel YOLOXPAFPN and decoupled head. 128 px images, batch 8, CPU, 5 epochs.
_base_ = [
    '../_base_/models/yolox_synthetic.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
