# LD on GFL on the embedded synthetic data (the GFL pair of TID/FRS): T = 10,
# weight 0.25 as mmdet's LD configs.
_base_ = ['../tid/tid_gfl_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True,
                   cls=dict(source='bbox_head', index=0),
                   reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(_delete_=True,
                        loss_ld=dict(type='LDLoss', temperature=10.0, loss_weight=0.25)))
