# ICD ablation on the synthetic RetinaNet pair: Prediction-guided Feature Imitation alone
# (weight 1.5, 1x1 adapter 64 -> 96 per level), no RM.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck'), cls=dict(source='bbox_head', index=0)),
    distill_losses=dict(loss_pfi=dict(type='PFILoss', loss_weight=1.5)),
    warmup_iters=50)
