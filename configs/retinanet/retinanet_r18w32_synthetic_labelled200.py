# The student trained on the labelled subset only: the first 200 of the 800 synthetic training
# images, for the same 500 iterations of 8 images as the 5-epoch quick tier (20 epochs of 25).
# The baseline of the label-free configs of this folder, which see all 800 images unlabelled.
_base_ = './retinanet_r18w32_synthetic.py'
max_epochs = 20
train_dataloader = dict(dataset=dict(indices=200))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5)
]
