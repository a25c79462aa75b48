# GID ablation on the synthetic Faster R-CNN pair: only the response term (its weight as in
# gid_faster_rcnn_r18w48_r18w32_synthetic.py, the others 0; the loss then neither computes
# nor logs them). Same GISM (RPN, K = 10, NMS 0.3, min_size 2 px).
_base_ = './gid_faster_rcnn_r18w48_r18w32_synthetic.py'
model = dict(
    distill_losses=dict(
        loss_gid=dict(
            feature_weight=0.0,
            relation_weight=0.0,
            response_cls_weight=0.1,
            response_reg_weight=0.1)))
