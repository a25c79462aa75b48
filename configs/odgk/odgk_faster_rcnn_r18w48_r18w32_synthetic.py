# ODGK on the embedded synthetic Faster R-CNN pair (128 px images): ground-truth boxes,
# P2-P5, 5 prototypes per class from a bank of 64 instances, re-selected every 50
# iterations; boxes > 8 px enter the bank (30 px would drop most synthetic objects).
# Widths differ (64 vs 96): the local term trains a 1x1 adapter per level ('auto').
# Weights as the COCO config (untuned). 50-iteration warm-up, as every synthetic
# distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_odgk=dict(
            type='ODGKLoss',
            rois='gt',
            num_prototypes=5,
            alpha=10.0,
            bank_size=64,
            update_interval=50,
            min_size=8.0,
            loss_weight=5.0,
            local_weight=1.0,
            adapter='auto')),
    warmup_iters=50)
