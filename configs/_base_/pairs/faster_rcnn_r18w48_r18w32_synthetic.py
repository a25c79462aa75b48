# Pair on the embedded synthetic data (128 px, CPU): teacher Faster R-CNN R18-w48 (96-channel
# FPN/RPN/RoI extractor, 10 epochs) -> student Faster R-CNN R18-w32 (64 channels), on the
# student's data and 5-epoch schedule, bbox mAP. Train the teacher first:
#   python tools/train.py configs/faster_rcnn/faster_rcnn_r18w48_synthetic.py
_base_ = ['../../faster_rcnn/faster_rcnn_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::faster_rcnn/faster_rcnn_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/faster_rcnn_r18w48_synthetic/epoch_10.pth')
