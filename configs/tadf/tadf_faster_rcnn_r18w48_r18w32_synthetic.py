# TADF on the embedded synthetic Faster R-CNN pair: Gaussian-masked imitation of the five
# FPN levels (1x1 adapter 64 -> 96 per level), soft labels on the student's positive
# sampled RoIs, gated regression distillation, per-epoch decay; weights as the COCO config.
# 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_tadf=dict(
            type='TADFLoss',
            feat_weight=0.01,
            cls_weight=1.0,
            reg_weight=1.0,
            reg_gate='proposal',
            decay='epoch')),
    warmup_iters=50)
