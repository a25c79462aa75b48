# FGFI + PAD on the embedded synthetic RetinaNet pair: the FGFI loss of
# configs/fgfi/fgfi_retina_r18w48_r18w32_synthetic.py (imitation mask from the student's
# anchors, 3x3 adapter 64 -> 96, weight 0.01) reweighted by a learned per-location variance.
# 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_pad=dict(
            type='PADLoss', loss=dict(type='FGFILoss', loss_weight=0.01), granularity='location')),
    warmup_iters=50)
