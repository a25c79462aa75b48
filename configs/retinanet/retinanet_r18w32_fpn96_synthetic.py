# Student with the teacher's neck/head width: RetinaNet, ResNet-18 with 32 base
# channels and a 96-channel FPN/head (the teacher's 96). Its bbox_head has the
# teacher's shapes, so it can inherit the teacher's head weights (FGD/MGD's
# inheriting strategy); its neck cannot (the lateral convs read 64/128/256
# backbone channels, the teacher's 96/192/384).
_base_ = ['./retinanet_r18w32_synthetic.py']
model = dict(neck=dict(out_channels=96), bbox_head=dict(in_channels=96, feat_channels=96))
