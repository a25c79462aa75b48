# Pair on the embedded synthetic data with RTMDet: teacher RTMDet-w64 (CSPNeXt widen 0.25,
# deepen 0.33, 64-channel neck/head, 10 epochs) -> student RTMDet-w32 (widen 0.125,
# deepen 0.167, 32 channels), on the student's data and 5-epoch schedule. Train the
# teacher first:
#   python tools/train.py configs/rtmdet/rtmdet_w64_synthetic.py
_base_ = ['../../rtmdet/rtmdet_w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::rtmdet/rtmdet_w64_synthetic.py'),
    teacher_ckpt='work_dirs/rtmdet_w64_synthetic/epoch_10.pth')
