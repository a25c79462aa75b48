# The synthetic RetinaNet pair trained on the synthetic training images as a bare image folder
# (no annotations: a user's unlabelled pool), for label-free distillation (the Distiller's
# labels='pseudo' or 'none'); validation on the annotated val split as usual.
_base_ = '../pairs/retina_r18w48_r18w32_synthetic.py'
unlabelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root='data/synthetic/',
        data_prefix=dict(img='images/train/'),
        metainfo={{_base_.metainfo}},
        pipeline=unlabelled_pipeline))
