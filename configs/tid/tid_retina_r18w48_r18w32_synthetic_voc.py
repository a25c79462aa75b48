# TID on the Pascal VOC layout of the synthetic data: the model of
# tid_retina_r18w48_r18w32_synthetic.py on retinanet_r18w32_synthetic_voc.py's data.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic_voc.py'
model = dict(
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_tid=dict(type='TIDLoss', loss_weight=0.005)),
    warmup_iters=50)
