# Student on the embedded synthetic data: Faster R-CNN, ResNet-18 with 32 base
# channels, 64-channel FPN P2-P6 and RPN, two-fc R-CNN head. 128 px images, batch 8, CPU.
_base_ = [
    '../_base_/models/faster_rcnn_tiny.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
