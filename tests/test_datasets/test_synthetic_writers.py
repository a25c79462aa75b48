"""COCO and Pascal VOC writers of the synthetic dataset (synthetic/writers.py)."""
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from mmkd_det.datasets.synthetic import GENERATOR_VERSION, SYNTHETIC_CLASSES, SyntheticObject
from mmkd_det.datasets.synthetic.writers import (CocoWriter, VocWriter, coco_ann_file, voc_xml,
                                                 write_jpeg)

RLE = dict(size=[32, 48], counts='abc')


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _objects():
    return [
        SyntheticObject(1, True, bbox=(3, 4, 10, 20), truncated=False, segmentation=RLE),
        SyntheticObject(5, True, bbox=(0, 30, 7, 2), truncated=True, segmentation=RLE),
    ]


def test_voc_xml_of_a_hand_made_annotation():
    text = voc_xml('000007.jpg', 48, 32, _objects()[:1])
    assert text == ('<annotation>\n'
                    '\t<folder>VOC2007</folder>\n'
                    '\t<filename>000007.jpg</filename>\n'
                    '\t<source><database>mmkd_det synthetic shapes</database></source>\n'
                    '\t<size><width>48</width><height>32</height><depth>3</depth></size>\n'
                    '\t<segmented>0</segmented>\n'
                    '\t<object>\n'
                    '\t\t<name>square</name>\n'
                    '\t\t<pose>Unspecified</pose>\n'
                    '\t\t<truncated>0</truncated>\n'
                    '\t\t<difficult>0</difficult>\n'
                    '\t\t<bndbox>\n'
                    '\t\t\t<xmin>4</xmin>\n'
                    '\t\t\t<ymin>5</ymin>\n'
                    '\t\t\t<xmax>13</xmax>\n'
                    '\t\t\t<ymax>24</ymax>\n'
                    '\t\t</bndbox>\n'
                    '\t</object>\n'
                    '</annotation>\n')


def test_voc_xml_parses_with_one_based_inclusive_corners():
    root = ET.fromstring(voc_xml('a.jpg', 48, 32, _objects()))
    objs = root.findall('object')
    assert [o.find('name').text for o in objs] == ['square', 'star']
    assert [o.find('truncated').text for o in objs] == ['0', '1']
    # (x, y, w, h) = (0, 30, 7, 2) covers pixels 0..6 x 30..31 -> 1-based 1..7 x 31..32
    box = [int(objs[1].find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
    assert box == [1, 31, 7, 32]
    assert voc_xml('e.jpg', 8, 8, []).count('<object>') == 0


def test_coco_writer_fields_and_per_split_ids(tmp_path):
    writer = CocoWriter(str(tmp_path), GENERATOR_VERSION)
    writer.add_image('/x/images/train/000001.jpg', 1, 48, 32, _objects())
    writer.add_image('/x/images/train/000002.jpg', 2, 48, 32, [])
    path = writer.end_split('train')
    assert path == coco_ann_file(str(tmp_path), 'train')
    assert path == osp.join(str(tmp_path), 'annotations', 'instances_train.json')
    with open(path) as f:
        coco = json.load(f)
    assert list(coco) == ['info', 'licenses', 'images', 'annotations', 'categories']
    assert coco['info'] == dict(
        description='mmkd_det synthetic shapes', version=str(GENERATOR_VERSION))
    assert coco['images'] == [
        dict(id=1, file_name='000001.jpg', width=48, height=32),
        dict(id=2, file_name='000002.jpg', width=48, height=32),
    ]
    assert coco['annotations'] == [
        dict(
            id=1,
            image_id=1,
            category_id=2,
            bbox=[3, 4, 10, 20],
            area=200,
            segmentation=RLE,
            iscrowd=0),
        dict(
            id=2,
            image_id=1,
            category_id=6,
            bbox=[0, 30, 7, 2],
            area=14,
            segmentation=RLE,
            iscrowd=0),
    ]
    assert coco['categories'] == [
        dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(SYNTHETIC_CLASSES)
    ]

    # the next split starts empty and numbers its annotations from 1 again
    writer.add_image('/x/images/val/000003.jpg', 3, 48, 32, _objects()[1:])
    with open(writer.end_split('val')) as f:
        val = json.load(f)
    assert [im['id'] for im in val['images']] == [3]
    assert [(a['id'], a['image_id']) for a in val['annotations']] == [(1, 3)]


def test_write_jpeg_round_trip(tmp_path):
    img = np.full((16, 24, 3), (30, 120, 200), np.uint8)
    path = str(tmp_path / 'flat.jpg')
    write_jpeg(path, img, 95)
    back = cv2.imread(path)
    assert back.shape == (16, 24, 3)
    assert np.abs(back.astype(int) - img).max() <= 2  # a flat colour survives JPEG


def test_voc_writer_layout(tmp_path):
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    paths = []
    for i in (1, 2, 3):
        paths.append(str(img_dir / f'{i:06d}.jpg'))
        write_jpeg(paths[-1], np.full((32, 48, 3), 40 * i, np.uint8), 90)
    root = str(tmp_path / 'VOC2007')
    writer = VocWriter(root)
    writer.add_image(paths[0], 1, 48, 32, _objects())
    writer.add_image(paths[1], 2, 48, 32, [])
    assert writer.end_split('train') == osp.join(root, 'ImageSets', 'Main', 'trainval.txt')
    writer.add_image(paths[2], 3, 48, 32, _objects()[:1])
    assert writer.end_split('val') == osp.join(root, 'ImageSets', 'Main', 'test.txt')

    with open(osp.join(root, 'ImageSets', 'Main', 'trainval.txt')) as f:
        assert f.read() == '000001\n000002\n'
    with open(osp.join(root, 'ImageSets', 'Main', 'test.txt')) as f:
        assert f.read() == '000003\n'
    linked = [osp.join(root, 'JPEGImages', osp.basename(p)) for p in paths]
    assert sorted(os.listdir(osp.join(root, 'JPEGImages'))) == [osp.basename(p) for p in linked]
    for path, link in zip(paths, linked):
        assert _read(link) == _read(path)
    with open(osp.join(root, 'Annotations', '000001.xml')) as f:
        assert f.read() == voc_xml('000001.jpg', 48, 32, _objects())
    with open(osp.join(root, 'Annotations', '000002.xml')) as f:
        assert f.read() == voc_xml('000002.jpg', 48, 32, [])
