# MGD on the embedded synthetic data (RetinaNet pair): alpha_mgd 2e-5,
# lambda_mgd 0.65; the 1x1 align conv maps 64 -> 96 channels. Weight inheritance
# is impossible here (neck/head widths differ).
_base_ = ['../frs/frs_retina_r18w48_r18w32_synthetic.py']
model = dict(
    recorders=dict(_delete_=True, fpn=dict(source='neck')),
    distill_losses=dict(_delete_=True, loss_mgd=dict(
        type='MGDLoss', alpha_mgd=2e-5, lambda_mgd=0.65)))
