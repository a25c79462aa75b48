# DRKD (Ni et al., IJCAI 2023): RetinaNet R101 2x (38.9) -> R50 2x, COCO 2017 (review Table 2:
# 40.3; the paper: R50 37.4 -> 40.3 with its own, larger teacher). Pixel-wise relation
# distillation through a GloRe unit per FPN level on each side (P3-P7), instance-wise relation
# and instance distillation on the ground-truth boxes (RoIAlign 7x7 over P3-P7). The paper's
# loss weights, relation-filter rule and normalisations were not available here: weights 1,
# no relation filter, means over feature elements (see configs/drkd/README.md).
_base_ = '../_base_/pairs/retina_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_drkd=dict(
            type='DRKDLoss',
            pr_weight=1.0,
            ir_weight=1.0,
            ins_weight=1.0,
            normalize='elements',
            relation_topk=None,
            loss_weight=1.0)),
    warmup_iters=0)
