# FGFI (imitation mask from the student's anchors), weight 0.01, on the embedded synthetic data (the RetinaNet pair of FRS/TID/SKD; student
# 64 -> teacher 96 channels through the loss's adapter). Weights as the COCO config.
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_fgfi=dict(type='FGFILoss', loss_weight=0.01)))
