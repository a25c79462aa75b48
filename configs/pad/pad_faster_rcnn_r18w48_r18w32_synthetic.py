# Mimic + PAD on the embedded synthetic Faster R-CNN pair: the Mimic loss of
# configs/mimic/mimic_faster_rcnn_r18w48_r18w32_synthetic.py (RPN proposals, P2-P5, Eq. 5,
# 1x1 transform 64 -> 96, weight 1) reweighted by a learned per-bin variance. 50-iteration
# warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck', levels=[0, 1, 2, 3])),
    distill_losses=dict(
        loss_pad=dict(
            type='PADLoss',
            loss=dict(
                type='MimicLoss',
                rois='proposals',
                normalize='dims',
                loss_weight=1.0,
                adapter='auto'),
            granularity='location')),
    warmup_iters=50)
