"""Preflight of tools/train.py: every path a config names, wrappers and evaluators."""
import os.path as osp

from mmkd_det.apis.dataset_check import dataset_entries
from mmkd_det.apis.preflight import annotated_evaluators, iter_datasets, join_root, missing_data


def test_wrapped_datasets_and_every_evaluator_file_are_checked(tmp_path):
    root = str(tmp_path)
    open(osp.join(root, 'a.json'), 'w').close()
    leaf_a = dict(type='CocoDataset', data_root=root, ann_file='a.json')
    leaf_b = dict(type='CocoDataset', data_root=root, ann_file='b.json')
    cfg = dict(
        train_dataloader=dict(
            dataset=dict(type='RepeatDataset', times=2,
                         dataset=dict(type='ConcatDataset', datasets=[leaf_a, leaf_b]))),
        val_dataloader=None,
        val_evaluator=[dict(type='CocoMetric', ann_file=osp.join(root, 'val.json')),
                       dict(type='VOCMetric')],
        test_evaluator=dict(metrics=[dict(type='CocoMetric', ann_file='/no/test.json')]))
    assert list(iter_datasets(cfg['train_dataloader']['dataset'])) == [leaf_a, leaf_b]
    assert [e['ann_file'] for e in annotated_evaluators(cfg, 'val')] == [
        osp.join(root, 'val.json')
    ]
    assert missing_data(cfg) == [osp.join(root, 'b.json'), osp.join(root, 'val.json'),
                                 '/no/test.json']
    assert [w for w, _, _ in dataset_entries(cfg)] == [
        'train_dataloader', 'train_dataloader[1]', 'val_evaluator', 'test_evaluator'
    ]


def test_join_root_keeps_absolute_and_empty_paths():
    assert join_root('data/', 'x.json') == 'data/x.json'
    assert join_root('data/', '/abs/x.json') == '/abs/x.json'
    assert join_root('', 'x.json') == 'x.json' and join_root('data/', '') == ''


def test_relative_data_roots_follow_the_project_rule(tmp_path, monkeypatch):
    """Relative data paths: the current directory first, then the project root
    (made absolute); found nowhere, the error lists both locations."""
    import pytest

    from mmkd_det.apis import preflight
    project = tmp_path / 'project'
    (project / 'data' / 'syn' / 'annotations').mkdir(parents=True)
    (project / 'data' / 'syn' / 'annotations' / 'val.json').write_text('{}')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from mmkd_det.models.distillers import model_config
    monkeypatch.setattr(model_config, 'project_root', lambda: str(project))
    cfg = dict(
        train_dataloader=dict(dataset=dict(data_root='data/syn/', ann_file='annotations/val.json')),
        val_evaluator=dict(type='CocoMetric', ann_file='data/syn/annotations/val.json'))
    preflight.check_config(cfg)  # found under the project root: no error
    assert cfg['train_dataloader']['dataset']['data_root'] == osp.join(str(project), 'data/syn/')
    assert cfg['val_evaluator']['ann_file'] == osp.join(str(project),
                                                        'data/syn/annotations/val.json')
    # present in the current directory: kept as written (the current directory wins)
    (elsewhere / 'data' / 'syn' / 'annotations').mkdir(parents=True)
    (elsewhere / 'data' / 'syn' / 'annotations' / 'val.json').write_text('{}')
    cfg['train_dataloader']['dataset']['data_root'] = 'data/syn/'
    preflight.resolve_data_roots(cfg)
    assert cfg['train_dataloader']['dataset']['data_root'] == 'data/syn/'
    # nowhere: every location tried is named
    cfg['train_dataloader']['dataset']['data_root'] = 'data/none/'
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_config(cfg)
    assert osp.join(str(elsewhere), 'data/none/') in str(err.value)
    assert osp.join(str(project), 'data/none/') in str(err.value)
