"""ImageFolderDataset: every image of a folder, no annotations."""
import numpy as np
import pytest
from PIL import Image

from mmkd_det.datasets import ImageFolderDataset
from mmkd_det.models.distillers.labels import check_annotated


@pytest.fixture
def folder(tmp_path):
    (tmp_path / 'imgs' / 'sub').mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / 'imgs' / 'b.png')
    Image.fromarray(np.zeros((40, 10, 3), np.uint8)).save(tmp_path / 'imgs' / 'a.JPG')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'imgs' / 'sub' / 'c.bmp')
    (tmp_path / 'imgs' / 'notes.txt').write_text('not an image')
    return tmp_path


def test_lists_images_sorted_with_their_sizes(folder):
    ds = ImageFolderDataset(data_root=str(folder), data_prefix=dict(img='imgs/'),
                            metainfo=dict(classes=('x', )), pipeline=[])
    assert len(ds) == 3
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    rows = [(d['img_path'].split('imgs/')[1], d['width'], d['height']) for d in infos]
    assert rows == [('a.JPG', 10, 40), ('b.png', 30, 20), ('sub/c.bmp', 8, 8)]
    assert all(d['instances'] == [] for d in infos)


def test_samples_have_no_boxes_and_labels_gt_refuses_them(folder):
    ds = ImageFolderDataset(
        data_root=str(folder), data_prefix=dict(img='imgs/'), metainfo_from='CocoDataset',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='Resize', scale=(32, 32), keep_ratio=True),
                  dict(type='PackDetInputs')])
    assert ds.metainfo['classes'][0] == 'person'
    sample = ds[0]['data_samples']
    assert 'bboxes' not in sample.gt_instances
    with pytest.raises(ValueError, match='no box annotations'):
        check_annotated([sample])


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img='nope/'), pipeline=[])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no image with an extension'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img='empty/'), pipeline=[])
    with pytest.raises(KeyError, match='metainfo_from'):
        ImageFolderDataset(data_root=str(tmp_path), data_prefix=dict(img='empty/'),
                           metainfo_from='NoSuchDataset', pipeline=[])
