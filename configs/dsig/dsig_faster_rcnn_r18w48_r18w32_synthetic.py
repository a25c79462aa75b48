# DSIG on the embedded synthetic Faster R-CNN pair: the loss settings of
# dsig_faster_rcnn_r101_r50.py (the authors' COCO weights, untuned here). The widths differ
# (64 vs 96): a 1x1 adapter per FPN level ('auto'). 50-iteration warm-up, as every synthetic
# distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_dsig=dict(
            type='DSIGLoss',
            fg_weight=0.5,
            bg_weight=0.5,
            edge_weight=1.0,
            bg_alpha=7.5,
            edge_bg='mined',
            mining_thr=0.6,
            image_reduction='sum',
            loss_weight=1.0,
            adapter='auto')),
    warmup_iters=50)
