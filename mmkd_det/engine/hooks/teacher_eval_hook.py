"""Evaluate the teacher once before training (catches unloaded teachers early)."""
from mmengine.hooks import Hook

from mmkd_det.registry import HOOKS
from .utils import unwrap_model


@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """Run the val loop's dataloader and evaluator on the teacher at the start.

    Metrics are logged as ``teacher/<metric>`` (e.g. ``teacher/coco/bbox_mAP``)
    and kept in ``runner.message_hub`` info ``teacher_metrics``. A teacher far
    below its expected mAP means a wrong checkpoint or preprocessing.

    Args:
        enabled (bool): switch. Defaults to True.
    """

    priority = 'LOW'

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def before_train(self, runner) -> None:
        model = unwrap_model(runner)
        if not self.enabled or not hasattr(model, 'teacher_predict_step') \
                or runner.val_loop is None:
            return
        loop = runner.val_loop
        was_training = model.training
        model.eval()
        for data in loop.dataloader:
            loop.evaluator.process(data_samples=model.teacher_predict_step(data), data_batch=data)
        metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
        model.train(was_training)
        if not metrics:
            runner.logger.warning(
                'Teacher evaluation before training: the teacher made no detection above its '
                'score threshold on the val set. Check teacher_ckpt, the teacher config and '
                'its preprocessing (a random teacher gives this).')
        metrics = {f'teacher/{k}': v for k, v in metrics.items()}
        runner.message_hub.update_info('teacher_metrics', metrics)
        runner.visualizer.add_scalars(metrics, step=runner.iter)
        runner.logger.info('Teacher evaluation before training: ' +
                           ', '.join(f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
                                     for k, v in metrics.items()))
