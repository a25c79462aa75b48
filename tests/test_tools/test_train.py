"""Runner-level training: 4 detectors, teacher eval, resume, export, 2-process gloo."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmkd_det.apis import export_student
from mmkd_det.datasets.synthetic import generate_synthetic_dataset
from mmkd_det.registry import HOOKS
from tests.conftest import ROOT, frs_distiller_cfg, save_weights, tiny_model_cfg
from tests.test_tools.runner_helpers import GLOO_EXIT_ABORT, run_dist, runner_cfg


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_dataset(root, num_train=8, num_val=4, img_size=64, seed=0,
                               formats=('coco', 'voc'))
    return root


@HOOKS.register_module(force=True)
class CountIters(Hook):
    def __init__(self):
        self.iters = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters.append(runner.iter)


def scoring_everything(cfg):
    """Random-weight detectors score below mmdet's 0.05 threshold: keep all boxes."""
    test_cfg = cfg.test_cfg.rcnn if 'rcnn' in cfg.test_cfg else cfg.test_cfg
    test_cfg.score_thr = 0.0
    return cfg


@pytest.mark.parametrize('kind', ['retina', 'gfl', 'fcos', 'faster'])
def test_distiller_trains_and_evaluates(kind, data_root, tmp_path):
    ckpt = save_weights(tiny_model_cfg(kind, 16, num_classes=6), str(tmp_path / 't.pth'))
    model = frs_distiller_cfg(kind, ckpt, num_classes=6)
    model['teacher'] = scoring_everything(model['teacher'])
    model['student'] = scoring_everything(model['student'])
    runner = Runner.from_cfg(runner_cfg(model, data_root, str(tmp_path / 'work')))
    runner.train()
    hub = runner.message_hub
    assert 'teacher/coco/bbox_mAP' in hub.get_info('teacher_metrics')
    for key in ('train/distill.loss_frs_fpn', 'train/distill.loss_frs_cls', 'train/loss'):
        assert key in hub.log_scalars, key
    assert 'val/coco/bbox_mAP' in hub.log_scalars
    state = torch.load(str(tmp_path / 'work' / 'iter_2.pth'), weights_only=False)['state_dict']
    assert not any(k.startswith('teacher') for k in state)
    out = str(tmp_path / 'student.pth')
    export_student(str(tmp_path / 'work' / 'iter_2.pth'), out)
    from mmdet.apis import init_detector
    plain = Config(dict(model=tiny_model_cfg(kind, 8, num_classes=6), default_scope='mmdet'))
    init_detector(plain, out, device='cpu', palette='random')  # plain mmdet loading


# VOCMetric warns that VOC2007 traditionally uses '11points'; the config asks 'area'
@pytest.mark.filterwarnings('ignore:Pascal VOC2007 uses')
def test_voc_layout_trains_evaluates_and_is_tabulated(data_root, tmp_path):
    """The synthetic data's VOC layout through the Runner (VOCDataset, VOCMetric),
    and the benchmark reading that evaluation back (its VOC table)."""
    from mmkd_det.analysis.benchmark import report
    from mmkd_det.analysis.logs import eval_history, last_metrics, main_key
    ckpt = save_weights(tiny_model_cfg('retina', 16, num_classes=6), str(tmp_path / 't.pth'))
    model = frs_distiller_cfg('retina', ckpt, num_classes=6)
    model['teacher'] = scoring_everything(model['teacher'])
    model['student'] = scoring_everything(model['student'])
    work = str(tmp_path / 'work')
    runner = Runner.from_cfg(runner_cfg(model, data_root, work, fmt='voc'))
    runner.train()
    teacher = runner.message_hub.get_info('teacher_metrics')
    assert {'teacher/pascal_voc/AP50', 'teacher/pascal_voc/AP75'} <= set(teacher)
    logged = last_metrics(work)
    assert main_key(logged) == 'pascal_voc/AP50'
    assert 0.0 <= logged['pascal_voc/AP75'] <= logged['pascal_voc/AP50'] <= 1.0
    assert [v for _, v in eval_history(work)] == [logged['pascal_voc/AP50']]
    run = dict(name='SynVOC FRS', seed=0, metrics=logged)
    md = report([run], [])
    assert 'Pascal VOC metric' in md and 'coco' not in md
    row = md.splitlines()[-1].split(' | ')
    assert row[1] == f'{100 * logged["pascal_voc/AP50"]:.1f}'


def test_resume_restores_student_and_rebuilds_teacher(data_root, tmp_path):
    ckpt = save_weights(tiny_model_cfg('retina', 16, num_classes=6), str(tmp_path / 't.pth'))
    model = frs_distiller_cfg('retina', ckpt, num_classes=6, fuse_teacher_bn=False)
    work = str(tmp_path / 'work')
    Runner.from_cfg(runner_cfg(model, data_root, work, max_iters=2)).train()
    saved = torch.load(osp.join(work, 'iter_2.pth'), weights_only=False)
    cfg = runner_cfg(model, data_root, work, max_iters=4)
    cfg.resume = True
    cfg.custom_hooks = [dict(type='CountIters')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    counter = next(h for h in runner.hooks if isinstance(h, CountIters))
    assert counter.iters == [2, 3]  # 0-based: continued after the 2 saved iterations
    distiller = runner.model
    teacher_ckpt = torch.load(ckpt)['state_dict']
    for k, v in distiller.teacher.state_dict().items():
        assert torch.equal(v, teacher_ckpt[k])
    assert saved['meta']['iter'] == 2 and 'optimizer' in saved


def test_export_cli(data_root, tmp_path):
    ckpt = save_weights(tiny_model_cfg('retina', 16, num_classes=6), str(tmp_path / 't.pth'))
    work = str(tmp_path / 'work')
    Runner.from_cfg(runner_cfg(frs_distiller_cfg('retina', ckpt, num_classes=6),
                               data_root, work)).train()
    export = osp.join(ROOT, 'tools/model_converters/export_student.py')
    proc = subprocess.run([sys.executable, export, osp.join(work, 'iter_2.pth'),
                           str(tmp_path / 's.pth')], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sd = torch.load(str(tmp_path / 's.pth'))['state_dict']
    assert 'backbone.conv1.weight' in sd and not any(k.startswith('distill') for k in sd)


def test_run_dist_retries_only_the_gloo_exit_abort_and_only_once(tmp_path):
    """run_dist reruns a command that died with GLOO_EXIT_ABORT once, on a new port, after
    clearing its dirs; another failure, or the abort twice, comes back as a failure."""
    count, work = tmp_path / 'count', tmp_path / 'work'
    # fails with the abort on the first call only; counts its calls; sees whether work/ exists
    script = (f'n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}; '
              f'[ -d {work} ] && echo stale; mkdir -p {work}; echo "port $PORT"; '
              f'[ "$n" -ge "$FAILS" ] && exit 0; echo "{GLOO_EXIT_ABORT}" >&2; exit 134')
    for fails, calls, rc in ((1, 2, 0), (2, 2, 134), (5, 2, 134)):
        count.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        proc = run_dist(['bash', '-c', script], dict(os.environ, FAILS=str(fails)), str(tmp_path),
                        clear=[str(work)])
        assert (proc.returncode, int(count.read_text())) == (rc, calls)
        assert 'stale' not in proc.stdout and 'port ' in proc.stdout
    count.unlink()
    proc = run_dist(['bash', '-c', f'echo 1 > {count}; echo other error >&2; exit 1'],
                    dict(os.environ), str(tmp_path))
    assert (proc.returncode, count.read_text().strip()) == (1, '1')


def test_dist_train_and_dist_test_two_cpu_processes(data_root, tmp_path):
    ckpt = save_weights(tiny_model_cfg('retina', 16, num_classes=6), str(tmp_path / 't.pth'))
    model = frs_distiller_cfg('retina', ckpt, num_classes=6)
    model['student'] = scoring_everything(model['student'])   # an mAP to log in the test
    cfg = runner_cfg(model, data_root, str(tmp_path / 'work'))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    # --keep-heap (glibc keeps freed memory) reaches each worker's tools/train.py
    proc = run_dist(['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg_path, '2', '--keep-heap'],
                    env, str(tmp_path), clear=[str(tmp_path / 'work')])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(str(tmp_path / 'work' / 'iter_2.pth'))
    log = proc.stdout + proc.stderr
    assert 'distill.loss_frs_fpn' in log and 'Distributed training: True' in log
    assert '--keep-heap' not in log          # accepted, and mallopt was found
    # the trained Distiller evaluated by two processes (tools/dist_test.sh)
    proc = run_dist(['bash', osp.join(ROOT, 'tools/dist_test.sh'), cfg_path,
                     str(tmp_path / 'work' / 'iter_2.pth'), '2', '--work-dir',
                     str(tmp_path / 'test')], env, str(tmp_path), clear=[str(tmp_path / 'test')])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log and 'coco/bbox_mAP:' in log


@pytest.mark.skipif(torch.cuda.is_available(), reason='the error is for machines without CUDA')
def test_amp_without_cuda_stops_with_the_fix(tmp_path):
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'),
        osp.join(ROOT, 'configs/retinanet/retinanet_r18w32_synthetic.py'), '--amp', '--work-dir',
        str(tmp_path)
    ],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert '--amp needs a CUDA GPU' in proc.stderr and 'drop --amp' in proc.stderr
    assert 'Traceback' not in proc.stderr
