"""Split statistics and COCO recounting of the synthetic dataset (synthetic/stats.py)."""
import json

import pytest

from mmkd_det.datasets.synthetic import (DISTRACTOR_TYPES, SIZE_BUCKETS, SYNTHETIC_CLASSES,
                                         SyntheticObject, load_coco_stats, size_bucket)
from mmkd_det.datasets.synthetic.stats import SplitStats


@pytest.mark.parametrize('area,bucket', [(0, 'small'), (32 * 32 - 1, 'small'), (32 * 32, 'medium'),
                                         (96 * 96 - 1, 'medium'), (96 * 96, 'large'),
                                         (1e9, 'large')])
def test_size_bucket_edges(area, bucket):
    assert size_bucket(area) == bucket


def test_split_stats_of_hand_made_images():
    st = SplitStats()
    boxes = [
        SyntheticObject(0, True, bbox=(0, 0, 31, 33)),  # 1023 px²: small
        SyntheticObject(5, True, bbox=(0, 0, 32, 32)),  # medium
        SyntheticObject(5, True, bbox=(1, 1, 96, 96)),  # large
    ]
    st.add_image(boxes, [SyntheticObject(2, False), SyntheticObject(2, False)])
    st.add_image([], [])
    st.add_image([], [SyntheticObject(0, False)])  # a hard negative
    per_class = {c: 0 for c in SYNTHETIC_CLASSES}
    per_class.update(disc=1, star=2)
    per_distractor = {d: 0 for d in DISTRACTOR_TYPES}
    per_distractor.update(hollow_triangle=2, crescent=1)
    assert st.to_dict() == dict(
        images=3,
        empty_images=2,
        boxes=3,
        per_class=per_class,
        per_size=dict(small=1, medium=1, large=1),
        distractors=3,
        images_with_distractors=2,
        per_distractor=per_distractor)
    assert list(st.to_dict()['per_size']) == list(SIZE_BUCKETS)


def test_load_coco_stats_of_a_hand_written_file(tmp_path):
    coco = dict(
        images=[dict(id=i) for i in (1, 2, 5)],
        annotations=[
            dict(image_id=1, category_id=2, bbox=[0, 0, 10, 10]),
            dict(image_id=1, category_id=2, bbox=[0, 0, 40, 40]),
            dict(image_id=5, category_id=7, bbox=[3, 3, 100, 100]),
        ],
        categories=[dict(id=2, name='b'),
                    dict(id=7, name='g'),
                    dict(id=9, name='unused')])
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(coco))
    assert load_coco_stats(str(path)) == dict(
        images=3,
        empty_images=1,
        boxes=3,
        per_class=dict(b=2, g=1, unused=0),
        per_size=dict(small=1, medium=1, large=1))
