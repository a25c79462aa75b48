# PKD from the GFL R18-w48 teacher alone into RetinaNet R18-w32 on the synthetic data: the
# second teacher of pkd_retina_gfl_r18w48_retina_r18w32_synthetic.py on its own (the first
# alone is configs/pkd/pkd_retina_r18w48_r18w32_synthetic.py). PKD weight 10 (mmrazor's).
_base_ = '../_base_/pairs/gfl_r18w48_retina_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=50)
