# Structured KD ablation on the synthetic benchmark. Table VII, attention-guided distillation L_AT
# + L_AM (gamma = 0).
_base_ = './skd_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_skd=dict(gamma=0)))
