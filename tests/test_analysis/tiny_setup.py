"""Shared by the analysis and tool tests: tiny generated data and a random
teacher for the synthetic TID config."""
import os.path as osp

from mmengine.registry import DefaultScope

from mmkd_det.datasets.synthetic import generate_synthetic_dataset
from mmkd_det.models.distillers import load_model_cfg
from tests.conftest import ROOT, save_weights

CONFIG = osp.join(ROOT, 'configs/tid/tid_retina_r18w48_r18w32_synthetic.py')


def tiny_setup(tmp):
    """Data in ``<tmp>/data`` (4 train, 2 val images of 64 px), a random R18-w48
    RetinaNet teacher in ``<tmp>/teacher.pth`` and the ``['--cfg-options', ...]``
    that point the synthetic configs at them (``tmp``: a ``pathlib.Path``).

    Returns:
        tuple: ``(tmp, teacher checkpoint, options)``.
    """
    root = str(tmp / 'data')
    generate_synthetic_dataset(root, num_train=4, num_val=2, img_size=64, seed=0,
                               formats=('coco',))
    teacher = load_model_cfg(osp.join(ROOT, 'configs/retinanet/retinanet_r18w48_synthetic.py'),
                             'teacher')
    # module fixtures run outside the autouse scope fixture
    with DefaultScope.overwrite_default_scope('mmkd_det'):
        ckpt = save_weights(teacher, str(tmp / 'teacher.pth'))
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={root}/',
               f'val_dataloader.dataset.data_root={root}/', 'train_dataloader.batch_size=2']
    return tmp, ckpt, options
