"""Shared fixtures: tiny real mmdet detectors built from mmdet's own configs."""
import copy
import os.path as osp
import socket

import pytest
import torch
from mmengine.registry import DefaultScope, init_default_scope

import mmkd_det  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

init_default_scope('mmkd_det')

_MMDET_MODELS = {
    'retina': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'gfl': 'mmdet::gfl/gfl_r50_fpn_1x_coco.py',
    'fcos': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'faster': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'atss': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
}
_CACHE = {}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a distributed launch's master."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_model_cfg(kind: str, width: int = 8, num_classes: int = 3) -> dict:
    """mmdet's config for ``kind`` shrunk to a ResNet-18 of ``width`` base
    channels and a ``2 * width`` FPN/head, random init (no downloads)."""
    from mmengine.hub import get_config
    if kind not in _CACHE:
        _CACHE[kind] = get_config(_MMDET_MODELS[kind]).model.to_dict()
    cfg = copy.deepcopy(_CACHE[kind])
    fpn = 2 * width
    stem = [width, 2 * width, 4 * width, 8 * width]
    cfg['backbone'].update(
        depth=18,
        base_channels=width,
        init_cfg=None,
        frozen_stages=-1,
        norm_eval=False,
        norm_cfg=dict(type='BN', requires_grad=True))
    start = cfg['neck'].get('start_level', 0)
    cfg['neck'].update(in_channels=stem, out_channels=fpn)
    if kind == 'faster':
        cfg['rpn_head'].update(in_channels=fpn, feat_channels=fpn)
        roi = cfg['roi_head']
        roi['bbox_roi_extractor']['out_channels'] = fpn
        roi['bbox_head'].update(in_channels=fpn, fc_out_channels=32, num_classes=num_classes)
    else:
        head = cfg['bbox_head']
        head.update(num_classes=num_classes, in_channels=fpn, feat_channels=fpn, stacked_convs=1)
        if kind in ('gfl', 'fcos', 'atss'):  # GN(32) heads: fewer groups for tiny widths
            head['norm_cfg'] = dict(type='GN', num_groups=4, requires_grad=True)
    if kind == 'fcos':  # the caffe-style config; use pytorch style tiny backbone
        cfg['backbone']['style'] = 'pytorch'
    assert start in (0, 1)
    from mmengine.config import ConfigDict
    return ConfigDict(cfg)  # mmdet reads train_cfg/test_cfg by attribute


@pytest.fixture(autouse=True)
def mmkd_det_scope():
    """Runners built by other tests change the default scope; reset it."""
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        yield


@pytest.fixture
def tiny_cfg():
    return tiny_model_cfg


def save_weights(model_cfg: dict, path: str, seed: int = 0) -> str:
    """Build ``model_cfg`` with a fixed seed and save a published-style ckpt."""
    from mmkd_det.registry import MODELS
    torch.manual_seed(seed)
    # module-scoped fixtures call this before the per-test scope reset below
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return path


@pytest.fixture
def weights(tmp_path):

    def _make(model_cfg, name='teacher.pth', seed=0):
        return save_weights(model_cfg, str(tmp_path / name), seed)

    return _make


def frs_distiller_cfg(kind='retina',
                      teacher_ckpt=None,
                      t_width=16,
                      s_width=8,
                      num_classes=3,
                      **overrides) -> dict:
    head = 'rpn_head' if kind == 'faster' else 'bbox_head'
    cfg = dict(
        type='Distiller',
        student=tiny_model_cfg(kind, s_width, num_classes),
        teacher=tiny_model_cfg(kind, t_width, num_classes),
        teacher_ckpt=teacher_ckpt,
        recorders=dict(fpn=dict(source='neck'), cls=dict(source=head, index=0)),
        distill_losses=dict(
            loss_frs_fpn=dict(type='FRSFeatureLoss', loss_weight=0.005),
            loss_frs_cls=dict(type='FRSHeadLoss', loss_weight=0.02)),
        probe_size=128)
    cfg.update(overrides)
    return cfg


@pytest.fixture
def frs_cfg():
    return frs_distiller_cfg


def tiny_loss_distiller(tmp_path, kind: str, loss_name: str, loss_cfg: dict, levels=None):
    """A tiny Distiller (teacher width 16, saved with seed 1; student width 8) of
    ``kind`` ('retina', 'faster', ...) with the FPN recorded as ``fpn`` (``levels``
    of it, if given) and one distillation loss."""
    from mmkd_det.registry import MODELS
    ckpt = save_weights(tiny_model_cfg(kind, 16), str(tmp_path / 't.pth'), seed=1)
    fpn = dict(source='neck') if levels is None else dict(source='neck', levels=list(levels))
    return MODELS.build(
        dict(
            type='Distiller',
            student=tiny_model_cfg(kind, 8),
            teacher=tiny_model_cfg(kind, 16),
            teacher_ckpt=ckpt,
            recorders=dict(fpn=fpn),
            distill_losses={loss_name: loss_cfg},
            probe_size=64))


def demo_batch(model, num_items=(3, 1)) -> dict:
    """Two 64 x 64 demo images with ``num_items`` boxes of 3 classes (seed 0), through
    the student's data preprocessor (training mode)."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    data = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=list(num_items), num_classes=3)
    return model.student.data_preprocessor(data, True)


def with_local_teachers(cfg, tmp_path, probe_size=None):
    """``cfg`` (an mmengine Config of a Distiller) with every teacher's weights replaced
    by a random checkpoint of its own config saved under ``tmp_path`` (no download);
    ``probe_size`` overrides the build-time probe."""
    from mmkd_det.models.distillers import load_model_cfg
    from mmkd_det.registry import MODELS
    model = cfg.model
    teachers = model.teachers.items() if model.get('teachers') else [('teacher', None)]
    for name, entry in teachers:
        t_cfg = entry.model if entry is not None else model.teacher
        path = str(tmp_path / f'{name}.pth')
        torch.save(dict(state_dict=MODELS.build(load_model_cfg(t_cfg, name)).state_dict()), path)
        if entry is not None:
            entry.ckpt = path
        else:
            model.teacher_ckpt = path
    if probe_size is not None:
        model.probe_size = probe_size
    return cfg
