"""Every shipped config parses, and its Distiller's teacher/student configs resolve; the
config tree keeps its layout (pair bases, per-method folders with README and metafile)."""
import ast
import glob
import json
import os.path as osp
import re
import statistics
import subprocess
import sys

import pytest
import torch
import yaml
from mmengine.config import Config

from mmkd_det.models.distillers import load_model_cfg
from mmkd_det.registry import MODELS
from tests.conftest import with_local_teachers

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_ROOT = osp.join(ROOT, 'configs')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True) if '_base_' not in p)
METHODS = ('frs', 'tid', 'skd', 'fitnet', 'fgfi', 'defeat', 'fgd', 'mgd', 'pkd', 'cwd', 'kd', 'ld',
           'ssimkd', 'reviewkd', 'icd', 'mimic', 'dkd', 'dsig', 'odgk', 'gid', 'drkd', 'pad',
           'tadf', 'gdetkd')
DETECTORS = ('retinanet', 'gfl', 'faster_rcnn', 'mask_rcnn', 'rtmdet', 'yolox')
#: folders of Distiller capabilities (not papers): pair + losses configs with a README
CAPABILITIES = ('label_free', 'multi_teacher')
PAIRS = sorted(glob.glob(osp.join(CONFIG_ROOT, '_base_', 'pairs', '*.py')))
METHOD_CONFIGS = [
    p for m in METHODS + CAPABILITIES for p in sorted(glob.glob(osp.join(CONFIG_ROOT, m, '*.py')))
]


def _teachers(model_cfg) -> dict:
    """A Distiller config's teachers: name -> (model config, checkpoint)."""
    if model_cfg.get('teachers'):
        return {n: (t['model'], t['ckpt']) for n, t in model_cfg.teachers.items()}
    return dict(teacher=(model_cfg.teacher, model_cfg.teacher_ckpt))


def _rel(path: str) -> str:
    return osp.relpath(path, ROOT)


def _direct_bases(path: str) -> list:
    """The local files named by a config's ``_base_`` (read from the file's syntax tree,
    without executing it), as absolute paths; package bases such as ``mmdet::`` are skipped."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            names = [value] if isinstance(value, str) else list(value)
            return [osp.normpath(osp.join(osp.dirname(path), n)) for n in names if '::' not in n]
    return []


def _base_chain(path: str) -> list:
    """Every local file ``path`` inherits from, directly or through its bases."""
    chain, stack = [], _direct_bases(path)
    while stack:
        base = stack.pop()
        assert osp.isfile(base), f'{_rel(path)} inherits {base}, which does not exist'
        if base not in chain:
            chain.append(base)
            stack.extend(_direct_bases(base))
    return chain


def _folder(path: str) -> str:
    """The first folder under configs/ that holds ``path`` ('' for a top-level config)."""
    parts = osp.relpath(path, CONFIG_ROOT).split(osp.sep)
    return parts[0] if len(parts) > 1 else ''


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_parses_and_models_resolve(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmkd_det'
    if cfg.model.type == 'Distiller':
        s = load_model_cfg(cfg.model.student, 'student')
        s_head = s.get('bbox_head') or s.roi_head.bbox_head
        for name, (t_cfg, ckpt) in _teachers(cfg.model).items():
            t = load_model_cfg(t_cfg, name)
            t_head = t.get('bbox_head') or t.get('roi_head', {}).get('bbox_head')
            assert s_head.num_classes == t_head.num_classes
            assert ckpt
        for name in cfg.model.distill_losses:
            assert 'loss' in name


def test_coco_config_builds_with_a_local_teacher(tmp_path, monkeypatch):
    """configs/frs/frs_retina_r101_r50.py builds R101 -> R50 (weights from a local file)."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/frs/frs_retina_r101_r50.py'))
    with_local_teachers(cfg, tmp_path)
    model = MODELS.build(cfg.model)
    assert model.teacher.backbone.depth == 101 and model.student.backbone.depth == 50
    assert model.teacher_heads == ['bbox_head']
    adapters = model.distill_losses['loss_frs_fpn'].adapters['s_feats'].convs
    assert len(adapters) == 5 and adapters[0].kernel_size == (3, 3)


def test_train_without_coco_fails_clearly(tmp_path):
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'),
        osp.join(ROOT, 'configs/frs/frs_retina_r101_r50.py'), '--work-dir',
        str(tmp_path)
    ],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert 'Dataset files not found' in proc.stderr and 'data/coco/' in proc.stderr


@pytest.mark.parametrize('config',
                         ['configs/tid/tid_gfl_r101_r50.py', 'configs/tid/tid_atss_r101_r50.py'])
def test_tid_coco_config_runs_one_loss_step(config, tmp_path, monkeypatch):
    """The paper's GFL/ATSS pairs build at full width (R101 -> R50, local teacher
    weights) and give a finite TID loss with their ATSS assigners on a small batch."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    with_local_teachers(cfg, tmp_path, probe_size=128)
    model = MODELS.build(cfg.model)
    model.set_progress(iter=0)  # as DistillationScheduleHook does before the first iteration
    samples = []
    for boxes in ([[8., 8., 70., 60.], [0., 90., 40., 128.]], []):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(128, 128),
                pad_shape=(128, 128),
                batch_input_shape=(128, 128),
                scale_factor=(1., 1.)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes).view(-1, 4),
            labels=torch.zeros(len(boxes), dtype=torch.long))
        samples.append(s)
    losses = model.loss(torch.rand(2, 3, 128, 128), samples)
    value = losses['distill.loss_tid']
    assert torch.isfinite(value) and value > 0


def _samples(size: int, with_masks: bool = False) -> list:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for boxes in ([[8., 8., 70., 60.], [0., 90., 40., 128.]], [[30., 30., 90., 100.]]):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                pad_shape=(size, size),
                batch_input_shape=(size, size),
                scale_factor=(1., 1.)))
        gt = InstanceData(
            bboxes=torch.tensor(boxes).view(-1, 4),
            labels=torch.zeros(len(boxes), dtype=torch.long))
        if with_masks:
            masks = torch.zeros(len(boxes), size, size, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(boxes):
                masks[i, int(y0):int(y1), int(x0):int(x1)] = 1
            gt.masks = BitmapMasks(masks.numpy(), size, size)
        s.gt_instances = gt
        samples.append(s)
    return samples


@pytest.mark.parametrize('config', [
    'configs/skd/skd_faster_rcnn_r101_r50.py', 'configs/skd/skd_faster_rcnn_r101_r50_backbone.py',
    'configs/skd/skd_retina_r101_r50.py', 'configs/skd/skd_mask_rcnn_r101_r50.py'
])
def test_skd_coco_config_runs_one_loss_step(config, tmp_path, monkeypatch):
    """Structured-KD COCO pairs build at full width (R101 -> R50, local teacher
    weights), with the paper's schedule, and give finite AT/AM/NLD terms and
    student (box, mask) losses; the non-local blocks follow the per-level strides."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    assert cfg.train_cfg.max_epochs == 24
    assert [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0].milestones == [18, 22]
    with_local_teachers(cfg, tmp_path, probe_size=128)
    model = MODELS.build(cfg.model)
    loss = model.distill_losses['loss_skd']
    assert [b.stride for b in loss.student_nonlocal][:2] == [8, 4]
    losses = model.loss(torch.rand(2, 3, 128, 128), _samples(128, 'mask' in config))
    for term in ('loss_at', 'loss_am', 'loss_nld'):
        value = losses[f'distill.loss_skd.{term}']
        assert torch.isfinite(value) and value > 0
    if 'mask' in config:
        assert torch.isfinite(losses['loss_mask']) and losses['loss_mask'] > 0


_GDETKD = 'configs/gdetkd/gdetkd_faster_rcnn_r101_r50.py'


@pytest.mark.parametrize(
    'config,loss',
    [('configs/pkd/pkd_retina_r101_r50.py', 'loss_pkd'),
     ('configs/cwd/cwd_faster_rcnn_r101_r50.py', 'loss_cwd'),
     ('configs/mgd/mgd_retina_r101_r50_inherit.py', 'loss_mgd'),
     ('configs/ld/ld_gfl_r101_r50.py', 'loss_ld'), ('configs/kd/kd_retina_r101_r50.py', 'loss_kd'),
     ('configs/fitnet/fitnet_retina_r101_r50.py', 'loss_fitnet'),
     ('configs/fgfi/fgfi_faster_rcnn_r101_r50.py', 'loss_fgfi'),
     ('configs/defeat/defeat_faster_rcnn_r101_r50.py', 'loss_defeat.loss_fg'),
     ('configs/fgd/fgd_faster_rcnn_r101_r50.py', 'loss_fgd.loss_fg'),
     ('configs/fgd/fgd_retina_r101_r50_inherit.py', 'loss_fgd.loss_rel'),
     ('configs/ssimkd/ssimkd_faster_rcnn_r101_r50.py', 'loss_ssim'),
     ('configs/reviewkd/reviewkd_faster_rcnn_r101_r50.py', 'loss_reviewkd'),
     ('configs/icd/icd_retina_r101_r50.py', 'loss_rm'),
     ('configs/icd/icd_retina_r101_r50.py', 'loss_pfi'),
     ('configs/mimic/mimic_faster_rcnn_r101_r50.py', 'loss_mimic'),
     ('configs/dkd/dkd_faster_rcnn_r101_r50.py', 'loss_dkd.loss_nckd'),
     ('configs/pad/pad_faster_rcnn_r101_r50_mimic.py', 'loss_pad'),
     ('configs/pad/pad_faster_rcnn_r101_r50_fgfi.py', 'loss_pad'),
     ('configs/tadf/tadf_faster_rcnn_r101_r50.py', 'loss_tadf.loss_feat'),
     ('configs/gid/gid_faster_rcnn_r101_r50.py', 'loss_gid.loss_feature'),
     ('configs/gid/gid_retina_r101_r50.py', 'loss_gid.loss_relation'),
     ('configs/odgk/odgk_faster_rcnn_r101_r50.py', 'loss_odgk.local'),
     (_GDETKD, 'loss_gdetkd.loss_sgfi'), (_GDETKD, 'loss_gdetkd.loss_ckd'),
     ('configs/dsig/dsig_faster_rcnn_r101_r50.py', 'loss_dsig.loss_edge'),
     ('configs/dsig/dsig_faster_rcnn_r101_r50_logits.py', 'loss_dsig.loss_logit_cls'),
     ('configs/drkd/drkd_retina_r101_r50.py', 'loss_drkd.loss_ir')])
def test_review_method_coco_configs_run_one_loss_step(config, loss, tmp_path, monkeypatch):
    """The review's methods build at full R101 -> R50 width and give a finite loss;
    PKD keeps the first four levels; MGD's inherit variant starts from the teacher."""
    monkeypatch.chdir(ROOT)
    cfg = Config.fromfile(osp.join(ROOT, config))
    with_local_teachers(cfg, tmp_path, probe_size=128)
    model = MODELS.build(cfg.model)
    model.set_progress(iter=0)
    if 'pkd' in config or 'fgd_faster' in config:
        assert len(model.student_recorder.specs['fpn']['levels']) == 4
    if 'inherit' in config:  # (init_weights would fetch torchvision's R50: tested elsewhere)
        assert torch.equal(model.student.neck.fpn_convs[0].conv.weight,
                           model.teacher.neck.fpn_convs[0].conv.weight)
    losses = model.loss(torch.rand(2, 3, 128, 128), _samples(128))
    value = losses[f'distill.{loss}']
    assert torch.isfinite(value) and value >= 0


def test_base_chain_reader_resolves_relative_and_skips_packages(tmp_path):
    """The ``_base_`` reader used below: relative names resolve against the file, lists and
    strings both work, ``pkg::`` bases are skipped, and the chain is followed transitively."""
    (tmp_path / 'a').mkdir()
    (tmp_path / 'root.py').write_text('x = 1\n')
    (tmp_path / 'a' / 'mid.py').write_text("_base_ = ['mmdet::foo.py', '../root.py']\n")
    (tmp_path / 'a' / 'leaf.py').write_text("_base_ = './mid.py'\nmodel = dict()\n")
    leaf = str(tmp_path / 'a' / 'leaf.py')
    assert _direct_bases(leaf) == [str(tmp_path / 'a' / 'mid.py')]
    assert sorted(_base_chain(leaf)) == sorted(
        [str(tmp_path / 'a' / 'mid.py'), str(tmp_path / 'root.py')])


def test_every_method_folder_holds_configs():
    for method in METHODS:
        assert glob.glob(osp.join(CONFIG_ROOT, method, '*.py')), f'configs/{method}/ is empty'


@pytest.mark.parametrize('path', METHOD_CONFIGS, ids=_rel)
def test_method_config_is_a_pair_plus_losses(path):
    """A method config inherits a pair base (directly or through a config of its own method)
    and never a config of another method."""
    method = _folder(path)
    chain = _base_chain(path)
    foreign = [_rel(b) for b in chain if _folder(b) in METHODS and _folder(b) != method]
    assert not foreign, f'{_rel(path)} inherits other methods\' configs: {foreign}'
    pairs = [b for b in chain if b in PAIRS]
    assert len(pairs) == 1, f'{_rel(path)} should inherit exactly one pair base, got {pairs}'


@pytest.mark.parametrize('path', PAIRS, ids=_rel)
def test_pair_base_holds_no_method(path, monkeypatch):
    """A pair base is a Distiller with a student, a teacher and its weights, and nothing
    method-specific; its teacher and student agree on the classes."""
    monkeypatch.chdir(ROOT)
    assert not [b for b in _base_chain(path) if _folder(b) in METHODS]
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmkd_det'
    assert cfg.model.type == 'Distiller'
    for key in ('recorders', 'distill_losses', 'warmup_iters'):
        assert key not in cfg.model, f'{_rel(path)} sets model.{key}: that belongs to a method'
    s = load_model_cfg(cfg.model.student, 'student')
    s_head = s.get('bbox_head') or s.roi_head.bbox_head
    for name, (t_cfg, ckpt) in _teachers(cfg.model).items():
        assert ckpt
        t = load_model_cfg(t_cfg, name)
        t_head = t.get('bbox_head') or t.roi_head.bbox_head
        assert s_head.num_classes == t_head.num_classes


def test_every_pair_base_is_used():
    used = {b for p in METHOD_CONFIGS for b in _base_chain(p)}
    assert not [_rel(p) for p in PAIRS if p not in used]


def _load_yaml(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('folder', METHODS + DETECTORS + CAPABILITIES)
def test_folder_readme_names_every_config(folder):
    readme = osp.join(CONFIG_ROOT, folder, 'README.md')
    assert osp.isfile(readme), f'configs/{folder}/README.md is missing'
    with open(readme) as f:
        text = f.read()
    missing = [
        osp.basename(p) for p in sorted(glob.glob(osp.join(CONFIG_ROOT, folder, '*.py')))
        if osp.basename(p) not in text
    ]
    assert not missing, f'configs/{folder}/README.md does not describe {missing}'


@pytest.mark.parametrize('method', METHODS)
def test_method_metafile(method):
    """configs/<method>/metafile.yml follows mmdet's model-index format: one collection with
    paper, README and code; every model names that collection, an existing config and results
    whose source (the paper or our measurement) is stated."""
    path = osp.join(CONFIG_ROOT, method, 'metafile.yml')
    assert osp.isfile(path), f'configs/{method}/metafile.yml is missing'
    meta = _load_yaml(path)
    collections = meta['Collections']
    names = {c['Name'] for c in collections}
    for c in collections:
        assert c['Paper']['URL'].startswith('http') and c['Paper']['Title']
        assert osp.isfile(osp.join(ROOT, c['README'])), c['README']
        assert c['Code']['URL'] and c['Code']['Version']
    models = meta['Models']
    assert models
    for m in models:
        assert m['In Collection'] in names, m['Name']
        assert osp.isfile(osp.join(ROOT, m['Config'])), f"{m['Name']}: {m['Config']} not found"
        assert m['Config'].startswith(f'configs/{method}/')
        assert m['Results'], m['Name']
        for r in m['Results']:
            assert r['Task'] and r['Dataset'] and r['Metrics'], m['Name']
            assert r['Source'] in ('paper', 'reference', 'measured'), m['Name']
            if r['Source'] == 'measured':
                assert 'python' in r['Command'] or 'bash' in r['Command'], m['Name']


def test_model_names_are_unique_across_metafiles():
    names = [
        m['Name'] for method in METHODS
        for m in _load_yaml(osp.join(CONFIG_ROOT, method, 'metafile.yml'))['Models']
    ]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_model_index_lists_every_metafile():
    index = _load_yaml(osp.join(ROOT, 'model-index.yml'))
    listed = sorted(index['Import'])
    on_disk = sorted(_rel(p) for p in glob.glob(osp.join(CONFIG_ROOT, '*', 'metafile.yml')))
    assert listed == on_disk
    assert on_disk == sorted(f'configs/{m}/metafile.yml' for m in METHODS)


def test_entry_point_is_the_frs_retina_config(monkeypatch):
    """configs/frs_retina_r101_r50.py (the documented entry point) is the FRS config itself."""
    monkeypatch.chdir(ROOT)
    entry = Config.fromfile(osp.join(CONFIG_ROOT, 'frs_retina_r101_r50.py')).to_dict()
    frs = Config.fromfile(osp.join(CONFIG_ROOT, 'frs', 'frs_retina_r101_r50.py')).to_dict()
    assert entry == frs
    assert _direct_bases(osp.join(CONFIG_ROOT, 'frs_retina_r101_r50.py')) == [
        osp.join(CONFIG_ROOT, 'frs', 'frs_retina_r101_r50.py')
    ]


STANDARD_TIER = 'mmkd_det synthetic shapes, standard tier'


def _standard_tier_runs() -> dict:
    """(run name, seed) -> mAP (%) of every standard-tier run in docs/measurements; a run
    that several results files hold must have the same mAP in each. (Runs repeated on
    another machine, from another teacher checkpoint, are kept apart in rerun_standard*.)"""
    runs = {}
    for path in sorted(glob.glob(osp.join(ROOT, 'docs', 'measurements', 'standard*.json'))):
        with open(path) as f:
            for r in json.load(f):
                key = (r['name'], r['seed'])
                value = 100 * r['metrics']['coco/bbox_mAP']
                assert abs(runs.setdefault(key, value) - value) < 1e-9, (key, path)
    return runs


def test_metafile_standard_tier_results_match_the_measurements():
    """Each standard-tier result in a metafile is the mean of the runs its command names,
    recomputed from the committed results files (a metafile number cannot drift from them)."""
    runs = _standard_tier_runs()
    checked = 0
    for method in METHODS:
        for m in _load_yaml(osp.join(CONFIG_ROOT, method, 'metafile.yml'))['Models']:
            for r in m['Results']:
                if r['Dataset'] != STANDARD_TIER:
                    continue
                name = re.search(r"--runs '([^']+)'", r['Command']).group(1)
                seeds = re.search(r'--seeds ((?:\d+ )+)', r['Command']).group(1).split()
                values = [runs[(name, int(s))] for s in seeds]
                # rounded as the benchmark's tables round it (mean of the unrounded values)
                mean = float(f'{statistics.mean(values):.1f}')
                assert r['Metrics']['box AP'] == pytest.approx(mean, abs=1e-6), (m['Name'], values)
                checked += 1
    assert checked >= 24
