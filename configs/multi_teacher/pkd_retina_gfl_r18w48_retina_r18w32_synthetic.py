# PKD from two teachers (RetinaNet R18-w48 and GFL R18-w48) into RetinaNet R18-w32 on the
# synthetic data: one PKD loss per teacher, each at half the single-teacher weight (10), so that
# two identical teachers would give the single-teacher loss.
_base_ = '../_base_/pairs/retina_gfl_r18w48_retina_r18w32_synthetic.py'
model = dict(
    recorders=dict(fpn=dict(source='neck')),
    distill_losses=dict(
        loss_pkd_retina=dict(
            type='PKDLoss', loss_weight=5.0, adapter='auto', inputs=dict(t_feats='retina.fpn')),
        loss_pkd_gfl=dict(
            type='PKDLoss', loss_weight=5.0, adapter='auto', inputs=dict(t_feats='gfl.fpn'))),
    warmup_iters=50)
