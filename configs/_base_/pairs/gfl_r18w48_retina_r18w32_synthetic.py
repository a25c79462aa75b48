# Cross-family pair on the embedded synthetic data: teacher GFL R18-w48 (10 epochs) -> student
# RetinaNet R18-w32 (5 epochs). Train the teacher first:
#   python tools/train.py configs/gfl/gfl_r18w48_synthetic.py
_base_ = ['../../retinanet/retinanet_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::gfl/gfl_r18w48_synthetic.py'),
    teacher_ckpt='work_dirs/gfl_r18w48_synthetic/epoch_10.pth')
