# Student on the embedded synthetic data: Mask R-CNN, ResNet-18 with 32 base
# channels, 64-channel FPN P2-P6. Boxes and masks; bbox and segm mAP.
_base_ = [
    '../_base_/models/mask_rcnn_tiny.py',
    '../_base_/datasets/synthetic_coco_instance.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
