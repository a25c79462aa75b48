# TID ablation on the synthetic benchmark. Table 3, classification only: Score = Score_c (Score_r
# taken as 1).
_base_ = './tid_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_tid=dict(tasks=('cls', ))))
