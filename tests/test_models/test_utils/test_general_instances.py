"""GISM helpers (mmkd_det.models.utils.general_instances): GI score / box by hand, the
selection on hand-made boxes and against a slow per-image loop with a greedy NMS."""
import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps

from mmkd_det.models.utils import gi_score_and_box, select_general_instances


def test_gi_score_and_box_by_hand():
    # prior 0: t (0.9, 0.1), s (0.5, 0.6): |diffs| 0.4, 0.5 -> 0.5; maxima 0.9 vs 0.6 -> 0.3;
    #          teacher more confident -> teacher box
    # prior 1: t (0.2, 0.3), s (0.45, 0.1): |diffs| 0.25, 0.2 -> 0.25; maxima 0.3 vs 0.45 ->
    #          0.15; student more confident -> student box
    t = torch.tensor([[[0.9, 0.1], [0.2, 0.3]]])
    s = torch.tensor([[[0.5, 0.6], [0.45, 0.1]]])
    tb = torch.tensor([[[0., 0., 1., 1.], [0., 0., 2., 2.]]])
    sb = torch.tensor([[[5., 5., 6., 6.], [5., 5., 7., 7.]]])
    score, box = gi_score_and_box(t, s, tb, sb, 'max_abs_diff')
    torch.testing.assert_close(score, torch.tensor([[0.5, 0.25]]))
    torch.testing.assert_close(box, torch.tensor([[[0., 0., 1., 1.], [5., 5., 7., 7.]]]))
    score, _ = gi_score_and_box(t, s, tb, sb, 'abs_max_diff')
    torch.testing.assert_close(score, torch.tensor([[0.3, 0.15]]))
    with pytest.raises(ValueError, match='gi_score must be one of'):
        gi_score_and_box(t, s, tb, sb, 'kl')
    with pytest.raises(ValueError, match='same anchor generator'):
        gi_score_and_box(t, s[..., :1], tb, sb)


def test_selection_by_hand():
    """Image 0: A [0,0,10,10] .9, B [1,1,11,11] .8 (IoU with A 81/119 = .68 > .3: suppressed),
    C [20,20,30,30] .7, D [0,0,5,5] .95 (side 5 <= min_size 6: dropped) -> A, C.
    Image 1 (64 x 64): E [0,0,20,20] .1, F [40,40,60,60] .5, G [50,50,100,100] .6 clipped to
    [50,50,64,64] (IoU with F 100 / 496 = .2: kept) -> G, F (E is the third, topk = 2)."""
    boxes = torch.tensor([[[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.],
                           [0., 0., 5., 5.]],
                          [[0., 0., 20., 20.], [40., 40., 60., 60.], [50., 50., 100., 100.],
                           [0., 0., 1., 1.]]])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.95], [0.1, 0.5, 0.6, 0.0]])
    gis = select_general_instances(scores, boxes, [(64, 64), (64, 64)], pre_nms_topk=10,
                                   nms_iou=0.3, topk=2, min_size=6)
    expected = torch.tensor([[0., 0., 0., 10., 10.], [0., 20., 20., 30., 30.],
                             [1., 50., 50., 64., 64.], [1., 40., 40., 60., 60.]])
    torch.testing.assert_close(gis.rois, expected)
    torch.testing.assert_close(gis.scores, torch.tensor([0.9, 0.7, 0.6, 0.5]))
    assert gis.valid.tolist() == [[True, True], [True, True]]
    torch.testing.assert_close(gis.boxes, expected[:, 1:].view(2, 2, 4))
    # pre_nms_topk = 2 keeps D, A in image 0 (D then dropped): only A; image 1: G, F
    gis = select_general_instances(scores, boxes, [(64, 64), (64, 64)], pre_nms_topk=2,
                                   nms_iou=0.3, topk=3, min_size=6)
    assert gis.rois[:, 0].tolist() == [0., 1., 1.]
    assert gis.valid.tolist() == [[True, False, False], [True, True, False]]
    # nothing survives: empty rois, no valid slot
    gis = select_general_instances(scores, boxes, None, topk=2, min_size=100)
    assert gis.rois.shape == (0, 5) and not gis.valid.any()


def _greedy_nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        if all(bbox_overlaps(boxes[i:i + 1], boxes[j:j + 1]).item() <= thr for j in keep):
            keep.append(i)
    return keep


def test_selection_against_loop():
    torch.manual_seed(0)
    batch, num = 3, 60
    xy = torch.rand(batch, num, 2) * 50
    wh = torch.rand(batch, num, 2) * 30 + 1
    boxes = torch.cat([xy, xy + wh], -1)
    scores = torch.rand(batch, num)
    shapes = [(60, 70), (40, 40), (64, 50)]
    gis = select_general_instances(scores, boxes, shapes, pre_nms_topk=40, nms_iou=0.3, topk=5,
                                   min_size=4)
    rows = []
    for b in range(batch):
        h, w = shapes[b]
        idx = scores[b].argsort(descending=True)[:40]
        cand = []
        for i in idx.tolist():
            x1, y1, x2, y2 = boxes[b, i].tolist()
            box = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
            if box[2] - box[0] > 4 and box[3] - box[1] > 4:
                cand.append((box, scores[b, i].item()))
        cb = torch.tensor([c[0] for c in cand])
        cs = torch.tensor([c[1] for c in cand])
        for i in _greedy_nms(cb, cs, 0.3)[:5]:
            rows.append([float(b)] + cb[i].tolist())
    torch.testing.assert_close(gis.rois, torch.tensor(rows))
