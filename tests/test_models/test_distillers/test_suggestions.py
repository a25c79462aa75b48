"""Close-name suggestions: misspelled Distiller keys, loss keys and registry types."""
import pytest

from mmkd_det.registry import (MODELS, accepted_kwargs, build_checked, check_type, close_names,
                               registered_types)
from tests.conftest import frs_distiller_cfg, save_weights, tiny_model_cfg


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('teacher') / 't.pth')
    return save_weights(tiny_model_cfg('retina', 16, 3), path)


def build_error(teacher_ckpt, exc_type, **overrides) -> str:
    cfg = frs_distiller_cfg('retina', teacher_ckpt)
    cfg.update(overrides)
    with pytest.raises(exc_type) as info:
        MODELS.build(cfg)
    return str(info.value)


def test_misspelled_distiller_keyword_names_the_closest_key(teacher_ckpt):
    msg = build_error(teacher_ckpt, TypeError, warmup_iter=10)
    assert "unknown argument 'warmup_iter' (did you mean 'warmup_iters'?)" in msg
    assert 'stop_epoch' in msg.split('Valid arguments:')[1]  # the full list follows


def test_unknown_loss_type_names_close_registered_types(teacher_ckpt):
    msg = build_error(teacher_ckpt, KeyError,
                      distill_losses=dict(loss_a=dict(type='FRSFeatureLos')))
    assert "distill_losses['loss_a']: unknown type 'FRSFeatureLos'" in msg
    assert "Close names: 'FRSFeatureLoss'" in msg


def test_unknown_mmdet_scoped_type_names_mmdet_types(teacher_ckpt):
    msg = build_error(teacher_ckpt, KeyError,
                      distill_losses=dict(loss_a=dict(type='mmdet.FocalLos')))
    close = msg.split('Close names:')[1].split('. Fix')[0]
    assert close.startswith(" 'mmdet.FocalLoss'") and 'mmdet.FocalCustomLoss' in close
    assert "'FocalLoss'" not in close  # the same type unscoped is not repeated


def test_misspelled_loss_key_names_the_loss_signature(teacher_ckpt):
    msg = build_error(teacher_ckpt, TypeError,
                      distill_losses=dict(loss_a=dict(type='FRSFeatureLoss', loss_weigth=1.)))
    assert ("distill_losses['loss_a']: FRSFeatureLoss got unknown argument 'loss_weigth' "
            "(did you mean 'loss_weight'?)") in msg


def test_accepted_kwargs_follows_kwargs_to_the_base_class():
    cwd = MODELS.get('CWDLoss')  # __init__(tau, **kwargs) -> BaseDistillLoss
    assert accepted_kwargs(cwd) == {
        'tau', 'standardise', 'loss_weight', 'inputs', 'adapter', 'resize_student', 'init_cfg'
    }

    class Open:

        def __init__(self, **kwargs):
            pass

    assert accepted_kwargs(Open) is None  # open-ended: no check, no false alarm


def test_valid_configs_build_unchanged():
    loss = build_checked(MODELS, dict(type='FRSFeatureLoss', loss_weight=0.5), 'x')
    assert loss.loss_weight == 0.5
    assert check_type(MODELS, dict(type='mmdet.FocalLoss'), 'x').__name__ == 'FocalLoss'


def test_close_names_case_and_prefix_fallbacks():
    assert close_names('focalloss', ['FocalLoss', 'GIoULoss']) == ['FocalLoss']
    assert close_names('bbox_head.cls', ['bbox_head.retina_cls', 'neck']) == \
        ['bbox_head.retina_cls']
    assert close_names('zzz', ['abc']) == []
    names = registered_types(MODELS)
    assert 'Distiller' in names and 'RetinaNet' in names and 'mmdet.RetinaNet' not in names
    scoped = registered_types(MODELS, scoped=True)
    assert 'mmkd_det.Distiller' in scoped and 'mmdet.RetinaNet' in scoped


@pytest.mark.parametrize('role', ['student', 'teacher'])
def test_unknown_nested_detector_type_names_close_types(teacher_ckpt, role):
    cfg = frs_distiller_cfg('retina', teacher_ckpt)
    cfg[role]['bbox_head']['loss_cls']['type'] = 'FocalLos'
    with pytest.raises(KeyError) as info:
        MODELS.build(cfg)
    msg = str(info.value)
    assert f"{role}: unknown type 'FocalLos'. Close names: 'FocalLoss', 'FocalCustomLoss'" in msg
    assert 'is not in the mmkd_det::models registry' in msg  # mmengine's text kept


def test_unknown_task_util_type_is_looked_up_in_its_registry(teacher_ckpt):
    cfg = frs_distiller_cfg('retina', teacher_ckpt)
    cfg['student']['bbox_head']['anchor_generator']['type'] = 'AnchorGenerater'
    msg = build_error(teacher_ckpt, KeyError, student=cfg['student'])
    assert "student: unknown type 'AnchorGenerater'. Close names: 'AnchorGenerator'" in msg
