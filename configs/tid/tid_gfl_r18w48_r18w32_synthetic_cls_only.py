# TID ablation on GFL, synthetic benchmark. Table 3, classification only: Score = Score_c.
_base_ = './tid_gfl_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(tasks=['cls'])))
