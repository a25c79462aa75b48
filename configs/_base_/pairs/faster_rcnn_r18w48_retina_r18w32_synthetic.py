# Cross-family pair on the embedded synthetic data (128 px, CPU): teacher Faster R-CNN
# R18-w48 (96-channel FPN P2-P6, strides 4-64, 10 epochs) -> student RetinaNet R18-w32
# (64-channel FPN P3-P6, strides 8-64), on the student's data and 5-epoch schedule. Method
# configs pair the strides (levels=[0, 1, 2, 3], teacher_levels=[1, 2, 3, 4]). Teacher first:
#   python tools/train.py configs/faster_rcnn/faster_rcnn_r18w48_synthetic.py
_base_ = ['../../retinanet/retinanet_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::faster_rcnn/faster_rcnn_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/faster_rcnn_r18w48_synthetic/epoch_10.pth')
