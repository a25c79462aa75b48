# PKD on the embedded synthetic RetinaNet pair: all four levels (the pair has four),
# loss_weight 10 (mmrazor's RetinaNet value). The widths differ (96 vs 64): a 1x1
# adapter per level ('auto'; not in the paper nor mmrazor). 50-iteration warm-up, as
# every synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=50)
