"""Tests of the embedded synthetic detection dataset (mmkd_det.datasets.synthetic)."""
import copy
import importlib.util
import json
import os
import os.path as osp
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mmkd_det.datasets.synthetic import (DISTRACTOR_TYPES, SIZE_BUCKETS, SYNTHETIC_CLASSES,
                                         generate_synthetic_dataset, load_coco_stats,
                                         render_synthetic_image, size_bucket)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'coco': osp.join(ROOT, 'configs', '_base_', 'datasets', 'synthetic_coco.py'),
    'voc': osp.join(ROOT, 'configs', '_base_', 'datasets', 'synthetic_voc.py'),
}
SMALL = dict(num_train=28, num_val=12, img_size=128)


@pytest.fixture(scope='module')
def small_ds(tmp_path_factory):
    """A 40-image dataset in both formats, shared by the read-only tests."""
    out = str(tmp_path_factory.mktemp('synthetic') / 'ds')
    return generate_synthetic_dataset(out, seed=0, **SMALL)


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _all_files(root):
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = osp.join(d, n)
            files[osp.relpath(p, root)] = p
    return files


def _coco(path):
    with open(path) as f:
        return json.load(f)


def test_deterministic_and_seed_dependent(small_ds, tmp_path):
    again = generate_synthetic_dataset(str(tmp_path / 'again'), seed=0, **SMALL)
    assert not again['skipped']
    a, b = _all_files(small_ds['out_dir']), _all_files(again['out_dir'])
    assert sorted(a) == sorted(b)
    assert sum(k.endswith('.jpg') for k in a) == 40 + 40  # images/ + VOC2007/JPEGImages
    for rel in a:
        assert _read(a[rel]) == _read(b[rel]), rel
    assert again['stats'] == small_ds['stats']

    other = generate_synthetic_dataset(str(tmp_path / 'other'), seed=1, **SMALL)
    c = _all_files(other['out_dir'])
    key = osp.join('annotations', 'instances_train.json')
    assert _read(c[key]) != _read(a[key])
    jpgs = [k for k in a if k.startswith('images')]
    assert sum(_read(a[k]) != _read(c[k]) for k in jpgs) == len(jpgs)


def test_coco_annotations_valid(small_ds):
    from pycocotools.coco import COCO
    seen_images = set()
    for split, num in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        coco = COCO(small_ds['coco'][split])
        assert len(coco.getImgIds()) == num
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
            list(SYNTHETIC_CLASSES)
        assert coco.getCatIds() == list(range(1, len(SYNTHETIC_CLASSES) + 1))
        for img in coco.loadImgs(coco.getImgIds()):
            assert img['id'] not in seen_images  # ids unique across splits
            seen_images.add(img['id'])
            assert img['file_name'] == f'{img["id"]:06d}.jpg'
            path = osp.join(small_ds['out_dir'], 'images', split, img['file_name'])
            assert osp.isfile(path)
            assert (img['width'], img['height']) == (128, 128)
        ann_ids = coco.getAnnIds()
        assert len(set(ann_ids)) == len(ann_ids) > 0
        for ann in coco.loadAnns(ann_ids):
            x, y, w, h = ann['bbox']
            assert all(isinstance(v, int) for v in ann['bbox'])
            assert x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
            assert w >= 4 and h >= 4
            assert ann['area'] == w * h and ann['iscrowd'] == 0
            assert 1 <= ann['category_id'] <= len(SYNTHETIC_CLASSES)


def _voc_boxes(xml_path):
    root = ET.parse(xml_path).getroot()
    size = root.find('size')
    objs = []
    for obj in root.findall('object'):
        bb = obj.find('bndbox')
        assert obj.find('difficult').text == '0'
        objs.append((obj.find('name').text,
                     tuple(int(bb.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))))
    return (int(size.find('width').text), int(size.find('height').text)), objs


def test_voc_matches_coco(small_ds):
    voc = small_ds['voc_root']
    for split, image_set in (('train', 'trainval'), ('val', 'test')):
        coco = _coco(small_ds['coco'][split])
        with open(osp.join(voc, 'ImageSets', 'Main', f'{image_set}.txt')) as f:
            ids = f.read().split()
        assert ids == [osp.splitext(im['file_name'])[0] for im in coco['images']]
        for im in coco['images']:
            stem = osp.splitext(im['file_name'])[0]
            jpg = osp.join(voc, 'JPEGImages', im['file_name'])
            assert _read(jpg) == _read(
                osp.join(small_ds['out_dir'], 'images', split, im['file_name']))
            size, objs = _voc_boxes(osp.join(voc, 'Annotations', stem + '.xml'))
            assert size == (im['width'], im['height'])
            expected = [(SYNTHETIC_CLASSES[a['category_id'] - 1],
                         (a['bbox'][0] + 1, a['bbox'][1] + 1, a['bbox'][0] + a['bbox'][2],
                          a['bbox'][1] + a['bbox'][3])) for a in coco['annotations']
                        if a['image_id'] == im['id']]
            assert objs == expected  # VOC: 1-based, inclusive corners


def test_stats_match_annotations(small_ds):
    with open(small_ds['meta_file']) as f:
        meta = json.load(f)
    assert meta['stats'] == small_ds['stats']
    assert meta['classes'] == list(SYNTHETIC_CLASSES)
    for split in ('train', 'val'):
        from_json = load_coco_stats(small_ds['coco'][split])
        st = meta['stats'][split]
        for key in ('images', 'empty_images', 'boxes', 'per_class', 'per_size'):
            assert from_json[key] == st[key], (split, key)
        assert sum(st['per_distractor'].values()) == st['distractors']
    total = meta['stats']['train']['distractors'] + meta['stats']['val']['distractors']
    assert total > 0  # unannotated look-alikes are present


def test_empty_images(tmp_path):
    info = generate_synthetic_dataset(
        str(tmp_path / 'empty'), num_train=3, num_val=2, empty_prob=1.0, formats=('coco', ))
    assert info['voc_root'] is None
    assert not osp.exists(osp.join(info['out_dir'], 'VOC2007'))
    for split, num in (('train', 3), ('val', 2)):
        coco = _coco(info['coco'][split])
        assert len(coco['images']) == num and coco['annotations'] == []
        assert info['stats'][split]['empty_images'] == num


def test_size_buckets_and_distractors_200(tmp_path):
    info = generate_synthetic_dataset(
        str(tmp_path / 'b'), num_train=0, num_val=200, formats=('coco', ), seed=3)
    st = info['stats']['val']
    assert all(st['per_size'][b] > 0 for b in SIZE_BUCKETS), st['per_size']
    assert all(st['per_class'][c] > 0 for c in SYNTHETIC_CLASSES), st['per_class']
    assert all(st['per_distractor'][d] > 0 for d in DISTRACTOR_TYPES)
    assert 0 < st['empty_images'] < 40
    assert st['images_with_distractors'] > 50


def test_render_constraints():
    n_annotated = 0
    for i in range(60):
        img, objects = render_synthetic_image(np.random.default_rng([7, i]))
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        for obj in objects:
            if not obj.annotated:
                continue
            n_annotated += 1
            x, y, w, h = obj.bbox
            assert w >= 4 and h >= 4 and x >= 0 and y >= 0
            assert x + w <= 128 and y + h <= 128
            assert obj.visible_fraction >= 0.3 - 1e-9  # at most 70 % occluded
    assert n_annotated > 60
    _, objects = render_synthetic_image(np.random.default_rng(1), distractor_prob=0.)
    assert all(o.annotated for o in objects)
    assert size_bucket(31 * 33) == 'small' and size_bucket(32 * 32) == 'medium'
    assert size_bucket(96 * 96) == 'large'


def test_idempotent(tmp_path):
    out = str(tmp_path / 'idem')
    first = generate_synthetic_dataset(out, num_train=6, num_val=2)
    assert not first['skipped']
    before = {rel: os.stat(p).st_mtime_ns for rel, p in _all_files(out).items()}
    time.sleep(0.02)
    start = time.perf_counter()
    second = generate_synthetic_dataset(out, num_train=6, num_val=2)
    assert time.perf_counter() - start < 0.5
    assert second['skipped'] and second['stats'] == first['stats']
    after = {rel: os.stat(p).st_mtime_ns for rel, p in _all_files(out).items()}
    assert after == before

    # an incomplete dataset (a deleted image) is regenerated
    os.remove(osp.join(out, 'images', 'train', '000001.jpg'))
    assert not generate_synthetic_dataset(out, num_train=6, num_val=2)['skipped']
    # other parameters regenerate and leave no stale files behind
    third = generate_synthetic_dataset(out, num_train=3, num_val=1, formats=('coco', ))
    assert not third['skipped']
    files = _all_files(out)
    assert sum(k.endswith('.jpg') for k in files) == 4
    assert not any(k.startswith('VOC2007') for k in files)


def test_generator_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"unknown formats \['yolo'\]"):
        generate_synthetic_dataset(str(tmp_path), num_train=1, num_val=0, formats=('yolo', ))
    with pytest.raises(ValueError, match='min_objects=3, max_objects=2'):
        generate_synthetic_dataset(
            str(tmp_path), num_train=1, num_val=0, min_objects=3, max_objects=2)


def test_cli(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'gen_synthetic_cli', osp.join(ROOT, 'tools', 'misc', 'gen_synthetic.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = str(tmp_path / 'cli')
    cli.main(['--out', out, '--num-train', '3', '--num-val', '2', '--seed', '5'])
    text = capsys.readouterr().out
    assert 'images/s' in text and 'distractors=' in text and 'small=' in text
    assert len(os.listdir(osp.join(out, 'images', 'train'))) == 3
    cli.main(['--out', out, '--num-train', '3', '--num-val', '2', '--seed', '5'])
    assert 'nothing regenerated' in capsys.readouterr().out


def test_cli_preset(tmp_path, capsys, monkeypatch):
    from mmkd_det.datasets.synthetic import SYNTHETIC_PRESETS
    spec = importlib.util.spec_from_file_location(
        'gen_synthetic_cli', osp.join(ROOT, 'tools', 'misc', 'gen_synthetic.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setitem(SYNTHETIC_PRESETS, 'quick', dict(
        out_dir='data/q', num_train=2, num_val=1, img_size=32, seed=0, formats=('coco', )))
    monkeypatch.chdir(tmp_path)
    cli.main(['--preset', 'quick', '--num-train', '50'])   # the preset's own numbers win
    assert 'wrote 3 images' in capsys.readouterr().out
    assert len(os.listdir(osp.join('data', 'q', 'images', 'train'))) == 2


def test_coco_eval_of_ground_truth_is_perfect(small_ds):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(small_ds['coco']['val'])
    dets = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            bbox=[float(v) for v in a['bbox']],
            score=1.0) for a in gt.dataset['annotations']
    ]
    ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert ev.stats[1] == pytest.approx(1.0)  # AP50


@pytest.mark.parametrize('fmt', ['coco', 'voc'])
def test_config_classes(fmt):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIGS[fmt])
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert tuple(loader.dataset.metainfo.classes) == SYNTHETIC_CLASSES
        assert len(loader.dataset.metainfo.palette) == len(SYNTHETIC_CLASSES)
    assert cfg.data_root == 'data/synthetic/'


def _dataset_cfg(fmt, split, data_root):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIGS[fmt])
    loader = cfg.train_dataloader if split == 'train' else cfg.val_dataloader
    ds = copy.deepcopy(loader.dataset.to_dict())
    ds['data_root'] = data_root
    return cfg, ds


# VOCMetric warns that VOC2007 traditionally uses '11points'; the config asks 'area'
@pytest.mark.filterwarnings('ignore:Pascal VOC2007 uses')
@pytest.mark.parametrize('fmt', ['coco', 'voc'])
def test_mmdet_builds_datasets(small_ds, fmt):
    pytest.importorskip('mmcv.ops')
    from mmdet.registry import DATASETS, METRICS
    from mmdet.utils import register_all_modules
    register_all_modules()
    root = small_ds['out_dir'] + '/'

    for split in ('train', 'val'):
        cfg, ds_cfg = _dataset_cfg(fmt, split, root)
        dataset = DATASETS.build(ds_cfg)
        num = SMALL['num_train'] if split == 'train' else SMALL['num_val']
        assert len(dataset) == num  # empty-GT images are kept
        assert dataset.metainfo['classes'] == SYNTHETIC_CLASSES
        coco = _coco(small_ds['coco'][split])
        by_image = {im['id']: [] for im in coco['images']}
        for a in coco['annotations']:
            by_image[a['image_id']].append(a)
        for i in range(min(len(dataset), 6)):
            info = dataset.get_data_info(i)
            img_id = int(osp.splitext(osp.basename(info['img_path']))[0])
            # mmdet boxes: COCO [x, y, x + w, y + h]; VOC subtracts 1 from the
            # 1-based inclusive corners: [x, y, x + w - 1, y + h - 1]
            off = 0 if fmt == 'coco' else 1
            expected = [[
                a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2] - off,
                a['bbox'][1] + a['bbox'][3] - off
            ] for a in by_image[img_id]]
            assert [inst['bbox'] for inst in info['instances']] == expected
            assert [inst['bbox_label'] for inst in info['instances']] == \
                [a['category_id'] - 1 for a in by_image[img_id]]
            sample = dataset[i]
            assert tuple(sample['inputs'].shape) == (3, 128, 128)
            assert len(sample['data_samples'].gt_instances) == len(expected)

    # the evaluator of the config scores the ground truth as perfect
    cfg, ds_cfg = _dataset_cfg(fmt, 'val', root)
    dataset = DATASETS.build(ds_cfg)
    ev_cfg = copy.deepcopy(cfg.val_evaluator.to_dict())
    if fmt == 'coco':
        ev_cfg['ann_file'] = small_ds['coco']['val']
    metric = METRICS.build(ev_cfg)
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        gt = sample.gt_instances
        sample.pred_instances = gt.clone()
        sample.pred_instances.scores = gt.bboxes.new_ones(len(gt))
        metric.process({}, [sample.to_dict()])
    results = metric.evaluate(len(dataset))
    key = 'coco/bbox_mAP' if fmt == 'coco' else 'pascal_voc/mAP'
    assert results[key] == pytest.approx(1.0), results


def test_presets_generate_their_folder_and_are_found_by_data_root(tmp_path, monkeypatch):
    from mmkd_det.datasets.synthetic import SYNTHETIC_PRESETS, generate_preset, presets_in_config
    monkeypatch.setitem(SYNTHETIC_PRESETS, 'tiny', dict(
        out_dir='data/tiny', num_train=2, num_val=1, img_size=32, seed=0, formats=('coco', )))
    info = generate_preset('tiny', root=str(tmp_path))
    assert info['out_dir'] == str(tmp_path / 'data' / 'tiny') and not info['skipped']
    assert info['params']['img_size'] == 32 and info['stats']['val']['images'] == 1
    assert generate_preset('tiny', root=str(tmp_path))['skipped']
    cfg = dict(train_dataloader=dict(dataset=dict(dataset=dict(data_root='data/tiny/'))),
               val_dataloader=dict(dataset=dict(data_root='data/synthetic')))
    assert presets_in_config(cfg) == ['quick', 'tiny']
    assert presets_in_config(dict(train_dataloader=dict(dataset=dict(data_root='x/')))) == []
    with pytest.raises(KeyError, match=r"unknown synthetic dataset preset 'nope'; choose one of"):
        generate_preset('nope')
    assert SYNTHETIC_PRESETS['standard']['img_size'] == 192
