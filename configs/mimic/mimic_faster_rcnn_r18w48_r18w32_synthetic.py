# Mimic on the embedded synthetic Faster R-CNN pair: the student's RPN proposals, P2-P5,
# Eq. 5. The widths differ (64 vs 96): a 1x1 transform per level ('auto', the paper's
# transform layer). loss_weight 1 (untuned). 50-iteration warm-up, as every synthetic
# distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_mimic=dict(
            type='MimicLoss', rois='proposals', normalize='dims', loss_weight=1.0, adapter='auto')),
    warmup_iters=50)
