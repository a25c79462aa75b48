# TID on Pascal VOC 07+12 (paper Table 2): teacher = your GFL R101 VOC model
# (configs/gfl/gfl_r101_fpn_1x_voc0712.py), student = the same GFL with a ResNet-50.
_base_ = '../_base_/pairs/gfl_r101_r50_voc.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.1)),
    warmup_iters=500)
