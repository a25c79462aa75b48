# Label-free: the 800 synthetic training images without annotations; the teacher's detections
# scoring >= 0.5 are the student's ground truth (labels='pseudo'), plus PKD on the FPN.
_base_ = '../_base_/unlabelled/retina_r18w48_r18w32_synthetic.py'
model = dict(
    labels='pseudo',
    pseudo_labels=dict(score_thr=0.5),
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto')),
    warmup_iters=50)
