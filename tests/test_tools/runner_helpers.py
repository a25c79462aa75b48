"""Helpers of the runner-level tests (test_train.py, test_dist_equivalence.py): a tiny
runner config and the dist_train.sh / dist_test.sh launch. A module of its own, so that
no test file imports another (which would register that file's hooks twice)."""
import os.path as osp
import shutil
import subprocess

from mmengine.config import Config

from tests.conftest import ROOT, free_port


def runner_cfg(model, data_root, work_dir, max_iters=2, ckpt_interval=2, fmt='coco'):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/_base_/datasets/synthetic_{fmt}.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = data_root + '/'
        loader.batch_size = 2
        loader.num_workers = 0
        for t in loader.dataset.pipeline:
            if t.type == 'Resize':
                t.scale = (64, 64)
    if fmt == 'coco':
        cfg.val_evaluator.ann_file = osp.join(data_root, 'annotations/instances_val.json')
    cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
    cfg.merge_from_dict(dict(
        default_scope='mmkd_det', model=model, work_dir=work_dir,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters),
        val_cfg=dict(type='ValLoop'), test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.005, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=ckpt_interval, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='TeacherEvalHook')],
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo'))))
    return cfg


#: how a gloo worker has died at the end of a run that had finished (std::terminate from
#: C++, not a Python error; cause not found); seen twice in full suites on a loaded machine
GLOO_EXIT_ABORT = 'terminate called without an active exception'


def run_dist(cmd, env, cwd, clear=(), timeout=600):
    """Run a dist_train.sh / dist_test.sh command; when a worker died with
    :data:`GLOO_EXIT_ABORT`, remove the ``clear`` dirs and run it once more on a new port
    (a second failure, or any other one, is returned as it is)."""
    def once():
        env['PORT'] = str(free_port())
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)

    proc = once()
    if proc.returncode != 0 and GLOO_EXIT_ABORT in proc.stdout + proc.stderr:
        for path in clear:
            shutil.rmtree(path, ignore_errors=True)
        proc = once()
    return proc
