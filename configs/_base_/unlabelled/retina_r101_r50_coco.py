# RetinaNet R101 2x (model zoo, 38.9) -> RetinaNet R50 2x trained on COCO's unlabeled2017 images
# (123k images without annotations, data/coco/unlabeled2017/) as a bare image folder: for
# label-free distillation (the Distiller's labels='pseudo' or 'none'). Validation on val2017.
_base_ = '../pairs/retina_r101_r50_coco.py'
unlabelled_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root='data/coco/',
        data_prefix=dict(img='unlabeled2017/'),
        metainfo_from='CocoDataset',
        pipeline=unlabelled_pipeline))
