# Two teachers on the embedded synthetic data: RetinaNet R18-w48 ('retina', 10 epochs) and GFL
# R18-w48 ('gfl', 10 epochs) -> student RetinaNet R18-w32, on the student's data and 5-epoch
# schedule. Losses read '<teacher>.<record>' (e.g. 'gfl.fpn'). Train the teachers first:
#   python tools/train.py configs/retinanet/retinanet_r18w48_synthetic.py
#   python tools/train.py configs/gfl/gfl_r18w48_synthetic.py
_base_ = ['../../retinanet/retinanet_r18w32_synthetic.py', '../distill_runtime.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teachers=dict(
        retina=dict(
            model='mmkd_det::retinanet/retinanet_r18w48_synthetic.py',
            ckpt='work_dirs/retinanet_r18w48_synthetic/epoch_10.pth'),
        gfl=dict(
            model='mmkd_det::gfl/gfl_r18w48_synthetic.py',
            ckpt='work_dirs/gfl_r18w48_synthetic/epoch_10.pth')))
