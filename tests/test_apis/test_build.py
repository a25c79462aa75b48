"""mmkd_det.apis.build: a config's Distiller and its first batch, without a Runner."""
import json
import os.path as osp

import pytest

from mmkd_det.apis import build_distiller, build_distiller_and_batch
from tests.conftest import ROOT
from tests.test_analysis.tiny_setup import CONFIG, tiny_setup


def test_build_distiller_refuses_a_plain_detector_config():
    plain = osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py')
    with pytest.raises(ValueError, match="model.type is 'RetinaNet'.*whose model is a Distiller"):
        build_distiller(plain)


def test_distiller_and_first_batch_of_a_split(tmp_path):
    _, ckpt, options = tiny_setup(tmp_path)
    cfg_options = dict(o.split('=', 1) for o in options[1:])
    cfg_options['train_dataloader.batch_size'] = 2
    cfg, model, data = build_distiller_and_batch(CONFIG, cfg_options, ckpt)
    assert cfg.model.teacher_ckpt == ckpt and type(model).__name__ == 'Distiller'
    assert len(data['inputs']) == len(data['data_samples']) == 2     # train batch size
    _, _, val = build_distiller_and_batch(CONFIG, cfg_options, ckpt, split='val', batch_size=2)
    # the 2 validation images of the generated data, in the annotation file's order
    with open(tmp_path / 'data' / 'annotations' / 'instances_val.json') as f:
        names = [im['file_name'] for im in json.load(f)['images']]
    assert [osp.basename(s.img_path) for s in val['data_samples']] == names
