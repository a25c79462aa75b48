# FGD with the authors' RetinaNet hyper-parameters on the embedded synthetic RetinaNet
# pair (student 64 -> teacher 96 channels through the loss's adapter). The synthetic
# schedule keeps its own gradient clipping (max norm 10); 50-iteration warm-up, as every
# synthetic distillation config.
_base_ = '../_base_/pairs/retina_r18w48_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_fgd=dict(type='FGDLoss', preset='retinanet')),
    warmup_iters=50)
