# LD on GFL on the embedded synthetic GFL pair: T = 10, weight 0.25 as mmdet's LD
# configs. 50-iteration warm-up, as every synthetic distillation config.
_base_ = '../_base_/pairs/gfl_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(cls=dict(source='bbox_head', index=0), reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(loss_ld=dict(type='LDLoss', temperature=10.0, loss_weight=0.25)),
    warmup_iters=50)
