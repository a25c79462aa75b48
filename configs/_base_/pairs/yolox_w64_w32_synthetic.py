# Pair on the embedded synthetic data with YOLOX: teacher YOLOX-w64 (CSPDarknet widen 0.25,
# deepen 0.67, 64-channel neck/head, 10 epochs) -> student YOLOX-w32 (widen 0.125,
# deepen 0.33, 32 channels), on the student's data and 5-epoch schedule. Train the
# teacher first:
#   python tools/train.py configs/yolox/yolox_w64_synthetic.py
_base_ = ['../../yolox/yolox_w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher=dict(cfg_path='mmkd_det::yolox/yolox_w64_synthetic.py'),
    teacher_ckpt='work_dirs/yolox_w64_synthetic/epoch_10.pth')
