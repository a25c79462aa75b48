# Label-free, teacher only: the 800 synthetic training images without annotations and no task
# loss (labels='none'). Everything the student learns comes from the teacher: PKD on the FPN,
# logit KD on the classification logits and an MSE on the box-regression outputs.
_base_ = '../_base_/unlabelled/retina_r18w48_r18w32_synthetic.py'
model = dict(
    labels='none',
    recorders=dict(
        fpn=dict(source='neck'),
        cls=dict(source='bbox_head', index=0),
        reg=dict(source='bbox_head', index=1)),
    distill_losses=dict(
        loss_pkd=dict(type='PKDLoss', loss_weight=10.0, adapter='auto'),
        loss_kd=dict(type='LogitKDLoss', temperature=1.0, channels_per_prior=6, loss_weight=1.0),
        loss_reg=dict(
            type='FitNetLoss',
            adapter=None,
            inputs=dict(s_feats='student.reg', t_feats='teacher.reg'),
            loss_weight=1.0)),
    warmup_iters=50)
