# Pair on the embedded synthetic data with instance masks: teacher Mask R-CNN R18-w48
# (10 epochs) -> student Mask R-CNN R18-w32, boxes and masks, bbox and segm mAP. Train the
# teacher first:
#   python tools/train.py configs/mask_rcnn/mask_rcnn_r18w48_synthetic.py
_base_ = ['../../mask_rcnn/mask_rcnn_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::mask_rcnn/mask_rcnn_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/mask_rcnn_r18w48_synthetic/epoch_10.pth')
