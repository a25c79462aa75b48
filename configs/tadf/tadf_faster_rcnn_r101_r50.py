# TADF (Sun et al., arXiv 2006.13108): Faster R-CNN R50 2x on COCO 2017. The review's row
# (Table 1: 40.1) uses an R152-FPN teacher; the model zoo has none for Faster R-CNN, so the
# teacher is R101 2x (39.8). Gaussian-masked imitation of the five FPN levels (no adapter:
# 256 = 256), soft labels on the student's positive sampled RoIs through the teacher's
# R-CNN head, regression distillation where the teacher's box beats the RoI, linear
# per-epoch decay. Weights: feature 0.01 (FGFI's imitation weight, the loss TADF's feature
# term refines; the paper's weights are unverified here), classification 1, regression 1.
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
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
    warmup_iters=0)
