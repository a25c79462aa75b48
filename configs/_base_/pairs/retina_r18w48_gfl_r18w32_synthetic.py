# Cross-family pair on the embedded synthetic data (128 px, CPU): teacher RetinaNet R18-w48
# (96-channel FPN P3-P6, 10 epochs) -> student GFL R18-w32 (64-channel FPN P3-P6), on the
# student's data and 5-epoch schedule. Same strides, different widths (1x1 adapters) and
# head families (9 anchors x 6 classes vs 1 x 6). Teacher first (tools/demo.sh does it):
#   python tools/train.py configs/retinanet/retinanet_r18w48_synthetic.py
_base_ = ['../../gfl/gfl_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::retinanet/retinanet_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/retinanet_r18w48_synthetic/epoch_10.pth')
