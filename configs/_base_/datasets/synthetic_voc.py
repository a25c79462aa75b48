# Embedded synthetic shapes dataset, Pascal VOC layout (data/synthetic/VOC2007/,
# trainval.txt = train split, test.txt = val split; same images as the COCO layout).
# Pipelines, classes and loaders come from the COCO layout; only the dataset differs.
_base_ = './synthetic_coco.py'
dataset_type = 'VOCDataset'
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(_delete_=True, sub_data_root='VOC2007/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(_delete_=True, sub_data_root='VOC2007/')))
test_dataloader = val_dataloader
# VOC's metric is AP at IoU 0.5 ('pascal_voc/AP50'); 0.75 is evaluated too for an
# AP75 column ('pascal_voc/mAP' is then the mean of the two, so tables use AP50)
val_evaluator = dict(
    _delete_=True, type='VOCMetric', metric='mAP', eval_mode='area', iou_thrs=[0.5, 0.75])
test_evaluator = val_evaluator
