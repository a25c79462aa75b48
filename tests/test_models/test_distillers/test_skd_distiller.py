"""Structured KD end to end: through the Distiller on tiny detectors, and a Mask R-CNN
student trained and evaluated (bbox + segm) by tools/train.py on generated data."""
import glob
import json
import os.path as osp
import subprocess
import sys

import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config

from mmkd_det.apis import student_checkpoint
from mmkd_det.registry import MODELS
from tests.conftest import save_weights, tiny_model_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def test_skd_trains_student_and_its_modules_not_the_teacher(weights):
    """Faster R-CNN (two-stage preset), teacher FPN 32 ch -> student 16 ch: the three
    terms are logged, every SKD module (adapters, both non-local blocks) and the
    student get gradients, the teacher none, and the exported student has no SKD keys."""
    ckpt = weights(tiny_model_cfg('faster', 16))
    d = MODELS.build(
        dict(
            type='Distiller',
            student=tiny_model_cfg('faster', 8),
            teacher=tiny_model_cfg('faster', 16),
            teacher_ckpt=ckpt,
            recorders=dict(fpn=dict(source='neck')),
            distill_losses=dict(loss_skd=dict(type='SKDLoss', nonlocal_cfg=dict(sub_sample=2))),
            probe_size=64))
    d.train()
    torch.manual_seed(0)
    data = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_items=[2, 1], num_classes=3)
    losses = d(**d.data_preprocessor(data, True), mode='loss')
    terms = {k: v for k, v in losses.items() if k.startswith('distill.loss_skd.')}
    assert sorted(terms) == [
        'distill.loss_skd.loss_am', 'distill.loss_skd.loss_at', 'distill.loss_skd.loss_nld'
    ]
    total, log = d.parse_losses(losses)
    assert all(k in log for k in terms)
    d.zero_grad()
    total.backward()
    skd = d.distill_losses['loss_skd']
    assert len(skd.student_nonlocal) == 5 and skd.student_nonlocal[0].in_channels == 16
    assert skd.teacher_nonlocal[0].in_channels == 32
    missing = [n for n, p in skd.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(p.grad is not None for p in d.student.neck.parameters())
    assert all(p.grad is None for p in d.teacher.parameters())
    exported = student_checkpoint(dict(state_dict=d.state_dict()))['state_dict']
    assert exported and not any('nonlocal' in k or 'adapter' in k for k in exported)
    assert set(exported) == set(d.student.state_dict())


def test_mask_rcnn_student_trains_and_evaluates_bbox_and_segm(tmp_path):
    """The synthetic Mask R-CNN SKD config (random teacher weights) trains one epoch on a
    few generated images with instance masks and reports box and mask AP."""
    from mmkd_det.datasets.synthetic import generate_synthetic_dataset
    data = str(tmp_path / 'syn') + '/'
    generate_synthetic_dataset(data, num_train=8, num_val=4, formats=('coco', ))
    teacher_cfg = Config.fromfile(osp.join(ROOT, 'configs/mask_rcnn/mask_rcnn_r18w48_synthetic.py'))
    ckpt = save_weights(teacher_cfg.model, str(tmp_path / 'teacher.pth'))
    ann = data + 'annotations/instances_val.json'
    opts = [
        f'model.teacher_ckpt={ckpt}',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0',
        'default_hooks.logger.interval=1',
        'custom_hooks.0.enabled=False',  # TeacherEvalHook: no teacher evaluation
        f'val_evaluator.ann_file={ann}',
        f'test_evaluator.ann_file={ann}'
    ]
    opts += [f'{k}_dataloader.dataset.data_root={data}' for k in ('train', 'val', 'test')]
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'),
        osp.join(ROOT, 'configs/skd/skd_mask_rcnn_r18w48_r18w32_synthetic.py'), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *opts
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (scalars, ) = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'scalars.json'))
    records = [json.loads(line) for line in open(scalars)]
    train = [r for r in records if 'loss_mask' in r]
    assert train and all('distill.loss_skd.loss_nld' in r for r in train)
    val = [r for r in records if 'coco/segm_mAP' in r]
    assert val and 'coco/bbox_mAP' in val[-1]
