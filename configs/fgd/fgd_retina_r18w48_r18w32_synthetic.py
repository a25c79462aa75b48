# FGD with the authors' RetinaNet hyper-parameters, on the embedded synthetic data (the RetinaNet pair of FRS/TID/SKD; student
# 64 -> teacher 96 channels through the loss's adapter). Weights as the COCO config.
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_fgd=dict(type='FGDLoss', preset='retinanet')))
