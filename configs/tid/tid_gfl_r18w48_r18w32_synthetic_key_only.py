# TID ablation on GFL, synthetic benchmark. Table 5: the key area alone.
_base_ = './tid_gfl_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(areas=['key'])))
