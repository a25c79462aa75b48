# Structured KD on the synthetic benchmark, sensitivity to the overall weight (the paper's
# Fig. 11 varies alpha, beta, gamma): every term scaled by loss_weight = 0.1.
_base_ = './skd_retina_r18w48_r18w32_synthetic.py'
model = dict(distill_losses=dict(loss_skd=dict(loss_weight=0.1)))
