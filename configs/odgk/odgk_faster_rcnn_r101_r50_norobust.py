# ODGK ablation: without the RDM robustness weights (every instance weight 1), otherwise
# as odgk_faster_rcnn_r101_r50.py (COCO, Faster R-CNN R101 2x -> R50 2x).
_base_ = '../_base_/pairs/faster_rcnn_r101_r50_coco.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_odgk=dict(
            type='ODGKLoss',
            rois='gt',
            num_prototypes=10,
            alpha=10.0,
            bank_size=128,
            update_interval=500,
            min_size=30.0,
            robust=False,
            loss_weight=5.0,
            local_weight=1.0)),
    warmup_iters=0)
