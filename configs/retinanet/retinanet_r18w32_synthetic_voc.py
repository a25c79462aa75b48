# The synthetic student (retinanet_r18w32_synthetic.py) on the Pascal VOC layout
# of the same data: VOCDataset (XML annotations) and VOCMetric (AP50, AP75).
_base_ = [
    '../_base_/models/retinanet_tiny.py',
    '../_base_/datasets/synthetic_voc.py',
    '../_base_/schedules/synthetic.py',
    '../_base_/default_runtime.py',
]
