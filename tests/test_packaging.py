"""The shipped configs from an installed mmkd_det: a wheel installed elsewhere, and the
source checkout (editable install), resolve ``mmkd_det::<folder>/<file>.py``."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import yaml
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FRS = 'mmkd_det::frs/frs_retina_r101_r50.py'
TEACHER = 'mmkd_det::retinanet/retinanet_r18w48_synthetic.py'
USER_CONFIG = f"""
_base_ = '{FRS}'
model = dict(distill_losses=dict(loss_frs_fpn=dict(loss_weight=0.01)))
"""
# run in a fresh interpreter from outside the checkout, with only the wheel's install
# on PYTHONPATH; prints what the test checks
PROBE = textwrap.dedent(f"""
    import json, sys
    import mmkd_det
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmkd_det.models.distillers import load_model_cfg, resolve_config_path
    cfg = Config.fromfile('my_config.py')
    teacher = load_model_cfg(dict(cfg_path='{TEACHER}', bbox_head=dict(num_classes=5)),
                             'teacher')
    print(json.dumps(dict(
        package=mmkd_det.__file__, model=cfg.model.type,
        losses={{k: v.type for k, v in cfg.model.distill_losses.items()}},
        fpn_weight=cfg.model.distill_losses.loss_frs_fpn.loss_weight,
        teacher_file=resolve_config_path('{TEACHER}'), teacher=teacher.type,
        teacher_classes=teacher.bbox_head.num_classes,
        hub=get_config('{TEACHER}').model.type, hub_frs=get_config('{FRS}').model.type)))
""")


def _copy_source(dst: str) -> None:
    """The files a build reads, copied (links followed only where the tree has them)."""
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info')
    shutil.copytree(
        osp.join(ROOT, 'mmkd_det'), osp.join(dst, 'mmkd_det'), symlinks=True, ignore=ignore)
    shutil.copytree(osp.join(ROOT, 'configs'), osp.join(dst, 'configs'), ignore=ignore)
    for name in ('pyproject.toml', 'setup.cfg', 'setup.py', 'MANIFEST.in', 'README.md', 'LICENSE',
                 'model-index.yml'):
        if osp.exists(osp.join(ROOT, name)):
            shutil.copy(osp.join(ROOT, name), dst)


def _pip(*args: str, cwd: str) -> None:
    proc = subprocess.run([
        sys.executable, '-m', 'pip', *args, '--no-deps', '--no-index',
        '--disable-pip-version-check', '-q'
    ],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_wheel_install_resolves_shipped_configs_outside_the_checkout(tmp_path):
    src, dist, site, user = (str(tmp_path / n) for n in ('src', 'dist', 'site', 'user'))
    os.makedirs(src)
    os.makedirs(user)
    _copy_source(src)
    _pip('wheel', '--no-build-isolation', '-w', dist, src, cwd=src)
    (wheel, ) = glob.glob(osp.join(dist, 'mmkd_det-*.whl'))
    _pip('install', '--target', site, wheel, cwd=str(tmp_path))
    assert osp.isfile(
        osp.join(site, 'mmkd_det', '.mim', 'configs', 'frs', 'frs_retina_r101_r50.py'))
    assert not osp.islink(osp.join(site, 'mmkd_det', '.mim', 'configs'))  # copies, no link
    with open(osp.join(user, 'my_config.py'), 'w') as f:
        f.write(USER_CONFIG)
    env = dict(os.environ, PYTHONPATH=site, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', PROBE],
                          cwd=user,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    installed = osp.join(site, 'mmkd_det')
    assert out['package'] == osp.join(installed, '__init__.py')  # not the checkout
    assert out['model'] == 'Distiller'
    assert out['losses'] == dict(loss_frs_fpn='FRSFeatureLoss', loss_frs_cls='FRSHeadLoss')
    assert out['fpn_weight'] == 0.01
    assert out['teacher_file'] == osp.join(installed, '.mim', 'configs', 'retinanet',
                                           'retinanet_r18w48_synthetic.py')
    assert out['teacher'] == 'RetinaNet' and out['teacher_classes'] == 5
    assert out['hub'] == 'RetinaNet' and out['hub_frs'] == 'Distiller'


def test_source_checkout_resolves_shipped_configs(tmp_path, monkeypatch):
    """The checkout (editable install, tools/setup_env.sh): the same names work from
    any directory, through mmkd_det/.mim/configs -> configs/."""
    from mmengine.hub import get_config
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'my_config.py').write_text(USER_CONFIG)
    cfg = Config.fromfile('my_config.py')
    assert cfg.model.type == 'Distiller'
    assert sorted(cfg.model.distill_losses) == ['loss_frs_cls', 'loss_frs_fpn']
    assert cfg.model.distill_losses.loss_frs_fpn.loss_weight == 0.01
    assert get_config(TEACHER).model.type == 'RetinaNet'
    assert get_config(FRS).model.type == 'Distiller'  # found through its metafile


def test_user_config_inheriting_a_shipped_pair_builds_anywhere(tmp_path, monkeypatch):
    """A user's config in another directory inherits the synthetic FRS pair; its
    teacher and student configs are found without the checkout as the cwd."""
    import torch

    from mmkd_det.models.distillers import load_model_cfg
    from mmkd_det.registry import MODELS
    from tests.conftest import save_weights
    monkeypatch.chdir(tmp_path)
    base = Config.fromfile(
        osp.join(ROOT, 'configs', 'frs', 'frs_retina_r18w48_r18w32_synthetic.py'))
    ckpt = save_weights(load_model_cfg(base.model.teacher, 'teacher'), str(tmp_path / 't.pth'))
    (tmp_path / 'mine.py').write_text(
        "_base_ = 'mmkd_det::frs/frs_retina_r18w48_r18w32_synthetic.py'\n"
        f'model = dict(teacher_ckpt={ckpt!r}, probe_size=64)\n')
    model = MODELS.build(Config.fromfile('mine.py').model)
    assert sorted(model.distill_losses) == ['loss_frs_cls', 'loss_frs_fpn']
    saved = torch.load(ckpt)['state_dict']
    assert torch.equal(model.teacher.bbox_head.retina_cls.weight,
                       saved['bbox_head.retina_cls.weight'])


def test_model_index_lists_every_metafile():
    """mmengine reads mmkd_det/.mim/model-index.yml (a link to the checkout's
    model-index.yml, copied into wheels) to resolve mmkd_det:: names: it must list
    exactly the configs' metafiles (a missing file breaks every name)."""
    index = osp.join(ROOT, 'mmkd_det', '.mim', 'model-index.yml')
    assert osp.islink(index) and os.readlink(index) == '../../model-index.yml'
    with open(index) as f:
        listed = yaml.safe_load(f)['Import']
    present = sorted(
        osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))
    assert sorted(listed) == present


def test_mim_configs_is_a_link_to_the_checkouts_configs():
    link = osp.join(ROOT, 'mmkd_det', '.mim', 'configs')
    assert osp.islink(link) and os.readlink(link) == '../../configs'


def test_registries_import_their_locations_once_mmkd_det_is_a_known_package(monkeypatch):
    """Once mmkd_det is in mmengine's package table (for mmkd_det:: names), a registry
    without a location would make mmengine import the absent ``mmkd_det.utils`` and warn
    "mmkd_det is not installed"; every mmkd_det registry names its location instead."""
    import mmengine.logging
    from mmengine.config.utils import MODULE2PACKAGE

    from mmkd_det import registry
    monkeypatch.setitem(MODULE2PACKAGE, 'mmkd_det', 'mmkd_det')
    logged = []
    monkeypatch.setattr(mmengine.logging, 'print_log', lambda msg, *a, **kw: logged.append(msg))
    for name in registry.__all__:
        monkeypatch.setattr(getattr(registry, name), '_imported', False)
        getattr(registry, name).import_from_location()
    assert logged and not [
        m for m in logged if 'not installed' in m or 'did not set import location' in m
    ]
