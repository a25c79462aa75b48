# ICD on the embedded synthetic RetinaNet pair (R18-w48, 96-channel FPN/head -> R18-w32,
# 64 channels): RM 4 + PFI 1.5 (the COCO weights, untuned here). The widths differ: PFI's
# 1x1 adapter per level maps 64 -> 96. 50-iteration warm-up, as every synthetic config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(
        loss_rm=dict(type='RankMimickingLoss', loss_weight=4.0),
        loss_pfi=dict(type='PFILoss', loss_weight=1.5)),
    warmup_iters=50)
