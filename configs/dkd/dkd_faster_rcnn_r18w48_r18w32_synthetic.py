# DKD on the embedded synthetic Faster R-CNN pair: the authors' detection setting
# (sampled RoIs, 6 classes + background, alpha 1, beta 0.25, T 1). 50-iteration warm-up,
# as every synthetic distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss', alpha=1.0, beta=0.25, temperature=1.0, rois='sampled',
            loss_weight=1.0)),
    warmup_iters=50)
