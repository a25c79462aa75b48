# ICD ablation on the synthetic RetinaNet pair: Rank Mimicking alone (weight 4), no PFI.
# Only the classification outputs are recorded.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(loss_rm=dict(type='RankMimickingLoss', loss_weight=4.0)),
    warmup_iters=50)
