# TID ablation on the synthetic benchmark. Table 4: Score_r = IoU_max directly instead of the
# detector's threshold bins.
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(loc_score='iou')))
