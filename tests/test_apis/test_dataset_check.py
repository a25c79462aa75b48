"""Dataset preflight: broken annotation files, class mismatches, unreadable images and
the boxes mmdet drops, on generated synthetic data corrupted on purpose."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmkd_det.apis import (DatasetCheckError, check_config, check_datasets, missing_data,
                           run_dataset_check)
from mmkd_det.apis.dataset_check import SAMPLE_IMAGES, load_coco_json, sample_spread
from mmkd_det.datasets.synthetic import generate_synthetic_dataset
from mmkd_det.registry import DATASETS
from tests.conftest import ROOT

CONFIG = osp.join(ROOT, 'configs/frs/frs_retina_r18w48_r18w32_synthetic.py')
TRAIN_JSON = 'annotations/instances_train.json'
VAL_JSON = 'annotations/instances_val.json'


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_dataset(root, num_train=8, num_val=4, img_size=64, seed=0)
    return root


@pytest.fixture
def data(generated, tmp_path, monkeypatch):
    """A private copy of the generated data (to corrupt) and a private cache."""
    monkeypatch.setenv('MMKD_DET_CACHE_DIR', str(tmp_path / 'cache'))
    root = str(tmp_path / 'data')
    shutil.copytree(generated, root)
    return root


def synthetic_cfg(root: str, fmt: str = 'coco') -> Config:
    cfg = Config.fromfile(CONFIG.replace('.py', '_voc.py') if fmt == 'voc' else CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root + '/'
    if fmt == 'coco':
        cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(root, VAL_JSON)
    return cfg


def problems_of(cfg, **kwargs) -> str:
    report = check_datasets(cfg, progress=False, **kwargs)
    return '\n'.join(report.problems)


def edit_json(path: str, edit) -> None:
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def test_clean_synthetic_data_passes_with_its_numbers(data):
    report = run_dataset_check(synthetic_cfg(data), verbose=False)
    assert report.problems == []
    by_place = {s.where: s for s in report.summaries}
    # test_dataloader / test_evaluator equal the val ones: checked once
    assert set(by_place) == {'train_dataloader', 'val_dataloader', 'val_evaluator'}
    with open(osp.join(data, TRAIN_JSON)) as f:
        train = json.load(f)
    summary = by_place['train_dataloader']
    assert (summary.images, summary.boxes) == (8, len(train['annotations']))
    assert summary.kept == summary.boxes and summary.dropped == {}
    with_boxes = {a['image_id'] for a in train['annotations']}
    assert summary.empty_images == 8 - len(with_boxes)
    assert summary.images_checked == 8


def test_truncated_json_names_the_file_and_position(data):
    path = osp.join(data, TRAIN_JSON)
    with open(path) as f:
        text = f.read()
    with open(path, 'w') as f:
        f.write(text[:len(text) // 2])
    msg = problems_of(synthetic_cfg(data))
    assert f'train_dataloader: {path}: not valid JSON' in msg
    assert f'of {len(text) // 2})' in msg and 'looks truncated' in msg
    assert 'Download or generate the file again' in msg


@pytest.mark.parametrize('key', ['images', 'annotations', 'categories'])
def test_json_without_a_coco_key_names_it(data, key):
    path = osp.join(data, TRAIN_JSON)
    edit_json(path, lambda d: d.pop(key))
    msg = problems_of(synthetic_cfg(data))
    assert f"{path}: no '{key}' key (found: " in msg


def test_annotation_without_area_is_named(data):
    path = osp.join(data, TRAIN_JSON)
    edit_json(path, lambda d: d['annotations'][0].pop('area'))
    msg = problems_of(synthetic_cfg(data))
    assert f'{path}: 1 annotations lack a field mmdet reads' in msg and 'has no area' in msg


def test_malformed_bbox_is_named(data):
    path = osp.join(data, TRAIN_JSON)
    edit_json(path, lambda d: d['annotations'][0].update(bbox=[1, 2, 3]))
    msg = problems_of(synthetic_cfg(data))
    assert f'{path}: 1 annotations have a bbox that is not four numbers' in msg
    assert ': [1, 2, 3])' in msg


def test_val_evaluator_ann_file_is_checked(data):
    cfg = synthetic_cfg(data)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(data, 'nope.json')
    assert missing_data(cfg) == [osp.join(data, 'nope.json')]
    with pytest.raises(Exception, match='Dataset files not found: .*nope.json'):
        check_config(cfg)
    # an evaluator file that exists but is broken is reported as such
    broken = osp.join(data, 'broken.json')
    with open(broken, 'w') as f:
        f.write('{"images": [')
    cfg.val_evaluator.ann_file = broken
    assert f'val_evaluator: {broken}: not valid JSON' in problems_of(cfg)


def test_classes_must_match_the_students_num_classes(data):
    cfg = synthetic_cfg(data)
    cfg.train_dataloader.dataset.metainfo = dict(classes=('disc', 'square', 'triangle'))
    msg = problems_of(cfg)
    assert ("train_dataloader has 3 classes ['disc', 'square', 'triangle'] but the model's "
            'student.bbox_head.num_classes is 6') in msg
    assert 'val_dataloader has' not in msg  # its 6 classes match


def test_classes_default_to_the_dataset_class_metainfo(data):
    cfg = synthetic_cfg(data)
    cfg.train_dataloader.dataset.pop('metainfo')  # CocoDataset's 80 COCO classes
    msg = problems_of(cfg)
    assert 'train_dataloader has 80 classes' in msg and 'num_classes is 6' in msg
    assert "classes ['person', 'bicycle'" in msg  # not in the file's categories


def test_class_name_not_in_categories_is_an_error(data):
    cfg = synthetic_cfg(data)
    classes = ('disc', 'square', 'triangle', 'cross', 'ring', 'circle')
    cfg.train_dataloader.dataset.metainfo = dict(classes=classes)
    msg = problems_of(cfg)
    assert "classes ['circle'] are not among the file's categories" in msg
    assert 'shift the labels' in msg


def test_missing_image_is_found_in_cheap_mode(data):
    with open(osp.join(data, TRAIN_JSON)) as f:
        first = json.load(f)['images'][0]['file_name']
    os.remove(osp.join(data, 'images/train', first))
    msg = problems_of(synthetic_cfg(data))
    assert '1 image files not found (of 8 checked)' in msg and first in msg


def test_full_mode_decodes_every_image(data, capsys):
    with open(osp.join(data, TRAIN_JSON)) as f:
        names = [img['file_name'] for img in json.load(f)['images']]
    garbage, cut = (osp.join(data, 'images/train', n) for n in names[:2])
    with open(garbage, 'wb') as f:
        f.write(b'not an image at all')
    with open(cut, 'rb') as f:
        raw = f.read()
    with open(cut, 'wb') as f:
        f.write(raw[:len(raw) * 2 // 3])
    cfg = synthetic_cfg(data)
    assert problems_of(cfg) == ''  # cheap mode: both files exist
    report = check_datasets(cfg, full=True, progress=True)
    msg = '\n'.join(report.problems)
    assert f'2 images OpenCV cannot decode (of 8 checked), e.g. {garbage}, {cut}' in msg
    assert '8/8' in capsys.readouterr().out  # mmengine's progress bar


def test_image_size_differing_from_the_annotation(data):
    path = osp.join(data, TRAIN_JSON)
    edit_json(path, lambda d: d['images'][0].update(width=65))
    msg = problems_of(synthetic_cfg(data), full=True)
    assert '1 images whose size differs from the annotation' in msg and 'annotated 64x65' in msg


def test_box_summary_matches_mmdet(data):
    """Boxes of every kind mmdet 3.3 drops, counted by hand, and the same counts
    from mmdet's own CocoDataset (an independent path)."""
    path = osp.join(data, TRAIN_JSON)

    def corrupt(d):
        img = d['images'][0]  # 64 x 64
        base = dict(image_id=img['id'], category_id=1, iscrowd=0, area=100.)
        extra = [
            dict(bbox=[10, 10, 0, 10]),  # zero width
            dict(bbox=[70, 10, 10, 10]),  # fully outside (right of the image)
            dict(bbox=[-20, 5, 10, 10]),  # fully outside (left)
            dict(bbox=[10, 10, 10, 10], area=0),  # area 0
            dict(bbox=[10, 10, 0.5, 10]),  # width < 1 px
            dict(bbox=[10, 10, 10, 10], category_id=99),  # not a class
            dict(bbox=[10, 10, 10, 10], ignore=True),  # marked ignore
            dict(bbox=[10, 10, 10, 10], iscrowd=1),  # kept, ignored
            dict(bbox=[10, 10, 10, 10], image_id=12345),  # no such image
        ]
        start = max(a['id'] for a in d['annotations']) + 1
        d['annotations'] += [dict(base, id=start + i, **e) for i, e in enumerate(extra)]
        # an image whose only box is degenerate: not "empty" for filter_empty_gt
        img2 = d['images'][1]
        d['annotations'] = [a for a in d['annotations'] if a['image_id'] != img2['id']]
        d['annotations'].append(dict(base, id=start + 50, image_id=img2['id'], bbox=[5, 5, 0, 0]))

    edit_json(path, corrupt)
    cfg = synthetic_cfg(data)
    cfg.train_dataloader.dataset.filter_cfg = dict(filter_empty_gt=True, min_size=0)
    report = check_datasets(cfg, progress=False)
    assert report.problems == []
    summary = report.summaries[0]
    assert summary.dropped == {
        'marked ignore': 1,
        'zero width or height': 2,
        'fully outside the image': 2,
        'area <= 0 or side < 1 px': 2,
        'category not in classes': 1,
        'image_id not in images': 1
    }
    assert summary.ignored == {'iscrowd': 1}
    text = summary.format()
    assert 'dropped by mmdet: 1 marked ignore, 2 zero width or height' in text
    assert 'stay in training as background' in text

    with open(path) as f:
        d = json.load(f)
    boxes_by_image = {a['image_id'] for a in d['annotations']}
    no_ann = [i for i in d['images'] if i['id'] not in boxes_by_image]
    assert summary.filtered_images == {
        'without annotations of the classes (filter_empty_gt)': len(no_ann)
    }
    ds_cfg = dict(cfg.train_dataloader.dataset, pipeline=[], lazy_init=False)
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == summary.images - len(no_ann)
    kept = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    assert kept == summary.kept == summary.boxes - sum(summary.dropped.values())


def test_voc_xml_errors_name_the_file(data):
    xml = osp.join(data, 'VOC2007/Annotations')
    first = sorted(os.listdir(xml))[0]
    with open(osp.join(xml, first), 'w') as f:
        f.write('<annotation><object><name>disc</name>')
    msg = problems_of(synthetic_cfg(data, 'voc'))
    assert 'VOC annotation files of' in msg and osp.join(xml, first) in msg
    assert 'no element found: line 1' in msg
    os.remove(osp.join(data, 'VOC2007/ImageSets/Main/test.txt'))
    assert 'test.txt: VOC image list not found. Put the dataset there' in problems_of(
        synthetic_cfg(data, 'voc'))


def test_voc_summary_counts_objects_of_other_classes(data):
    cfg = synthetic_cfg(data, 'voc')
    classes = ('disc', 'square', 'triangle', 'cross', 'ring', 'star')
    report = check_datasets(cfg, progress=False)
    base = report.summaries[0]
    cfg.train_dataloader.dataset.metainfo = dict(classes=classes[:5] + ('circle', ))
    summary = check_datasets(cfg, progress=False).summaries[0]
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    kept = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    assert summary.kept == kept
    assert summary.dropped == {'class not in classes': base.kept - kept}


def test_cheap_check_reads_each_file_once_and_caches_clean_results(data, monkeypatch):
    import mmkd_det.apis.dataset_check as dc
    reads = []
    real = dc.load_coco_json
    monkeypatch.setattr(dc, 'load_coco_json', lambda p: reads.append(p) or real(p))
    dc._COCO_CACHE.clear()
    cfg = synthetic_cfg(data)
    first = check_datasets(cfg, progress=False)
    # train + val loader + val evaluator (the test ones are the same): 3 uses, 2 files
    assert sorted(set(reads)) == sorted(osp.join(data, p) for p in (TRAIN_JSON, VAL_JSON))
    reads.clear()
    again = check_datasets(cfg, progress=False)
    assert reads == [] and again.summaries == first.summaries  # from the cache
    # a changed file is read again, and a now-missing sample image is still found
    path = osp.join(data, TRAIN_JSON)
    edit_json(path, lambda d: d['images'][0].update(width=63))
    os.remove(osp.join(data, 'images/val', sorted(os.listdir(osp.join(data, 'images/val')))[0]))
    msg = problems_of(cfg)
    assert path in reads and 'val_dataloader: 1 image files not found' in msg


def test_sample_spread_covers_the_list():
    items = list(range(100))
    sample = sample_spread(items)
    assert len(sample) == SAMPLE_IMAGES and sample[0] == 0 and sample[-1] >= 90
    assert sample_spread(items[:3]) == [0, 1, 2]


def test_load_coco_json_refuses_a_list(tmp_path):
    path = str(tmp_path / 'results.json')
    with open(path, 'w') as f:
        json.dump([{'image_id': 1}], f)
    with pytest.raises(DatasetCheckError, match='holds a list, not a COCO object'):
        load_coco_json(path)


def test_tools_stop_before_building_on_a_broken_dataset(data, tmp_path):
    path = osp.join(data, TRAIN_JSON)
    with open(path, 'w') as f:
        f.write('{"images": [], "annotations": [')
    teacher = str(tmp_path / 'any_file.pth')
    open(teacher, 'wb').close()  # the dataset check runs before the teacher is loaded
    opts = [f'{s}_dataloader.dataset.data_root={data}/' for s in ('train', 'val', 'test')]
    opts += [f'{s}_evaluator.ann_file={data}/{VAL_JSON}' for s in ('val', 'test')]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    for tool, extra in (('tools/misc/check_dataset.py', []),
                        ('tools/train.py', ['--work-dir', str(tmp_path / 'work')])):
        proc = subprocess.run(
            [sys.executable, osp.join(ROOT, tool), CONFIG, *extra, '--cfg-options', *opts,
             f'model.teacher_ckpt={teacher}'],
            cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert f'train_dataloader: {path}: not valid JSON' in proc.stderr
        assert 'Traceback' not in proc.stderr
