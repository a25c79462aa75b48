# New-pair recipe (docs/new_pair_recipe.md), step (a): the STUDENT detector on your dataset.
# The embedded synthetic data (COCO layout; python tools/misc/gen_synthetic.py --out
# data/synthetic) stands in for "your dataset": change the lines marked `<-`.
# Model: RetinaNet, ResNet-18 with 32 base channels, 64-channel FPN (strides 8-64).
_base_ = [
    '../_base_/models/retinanet_tiny.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/synthetic/'  # <- your dataset root
# <- your class names, in the order of the annotation file's categories
classes = ('disc', 'square', 'triangle', 'cross', 'ring', 'star')
model = dict(bbox_head=dict(num_classes=len(classes)))
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(_delete_=True, classes=classes),  # no synthetic palette
        ann_file='annotations/instances_train.json',  # <- relative to data_root
        data_prefix=dict(img='images/train/')))  # <- the training images' folder
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(_delete_=True, classes=classes),  # no synthetic palette
        ann_file='annotations/instances_val.json',  # <-
        data_prefix=dict(img='images/val/')))  # <-
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')  # <-
test_evaluator = val_evaluator
