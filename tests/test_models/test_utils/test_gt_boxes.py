"""GT padding (mmkd_det.models.utils.pad_gt)."""
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData

from mmkd_det.models.utils import pad_gt


def test_pad_gt_pads_to_the_largest_image():
    gts = [InstanceData(bboxes=torch.tensor([[1.0, 2.0, 3.0, 4.0]]), labels=torch.tensor([5])),
           InstanceData(bboxes=HorizontalBoxes(torch.tensor([[0.0, 0.0, 8.0, 8.0],
                                                             [2.0, 2.0, 6.0, 9.0]])),
                        labels=torch.tensor([1, 2])),
           InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]
    boxes, labels, valid = pad_gt(gts, 'cpu')
    assert boxes.shape == (3, 2, 4) and boxes.dtype == torch.float32
    torch.testing.assert_close(boxes, torch.tensor(
        [[[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]],
         [[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 9.0]],
         [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]), rtol=0, atol=0)
    assert labels.tolist() == [[5, 0], [1, 2], [0, 0]]
    assert valid.tolist() == [[True, False], [True, True], [False, False]]


def test_pad_gt_batch_without_boxes():
    gts = [InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    boxes, labels, valid = pad_gt(gts, 'cpu')
    assert boxes.shape == (2, 0, 4) and labels.shape == (2, 0) and valid.shape == (2, 0)
