"""Several teachers (``Distiller(teachers=dict(...))``): records by teacher name,
frozen and outside checkpoints, own preprocessing, and the errors."""
import copy

import pytest
import torch

from mmkd_det.models.distillers.data_preprocessor import teacher_preprocessors
from mmkd_det.registry import MODELS
from tests.conftest import demo_batch, save_weights, tiny_model_cfg


def _pkd(weight, teacher='teacher'):
    return dict(type='PKDLoss', loss_weight=weight, inputs=dict(t_feats=f'{teacher}.fpn'))


@pytest.fixture
def ckpts(tmp_path):
    cfg = tiny_model_cfg('retina', 8)
    return dict(t1=save_weights(cfg, str(tmp_path / 't1.pth'), seed=1),
                t2=save_weights(cfg, str(tmp_path / 't2.pth'), seed=2))


def _build(teachers=None, losses=None, **kw):
    cfg = dict(type='Distiller', student=tiny_model_cfg('retina', 8),
               recorders=dict(fpn=dict(source='neck')), distill_losses=losses, probe_size=64)
    if teachers is not None:
        cfg['teachers'] = {
            n: dict(model=tiny_model_cfg('retina', 8), ckpt=c)
            for n, c in teachers.items()
        }
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _distill_total(model, batch):
    losses = model.loss(batch['inputs'], batch['data_samples'], batch.get('teacher_inputs'))
    return sum(v for k, v in losses.items() if k.startswith('distill.'))


def test_two_identical_teachers_give_the_loss_of_one(ckpts):
    """Half the weight on each of two copies of one teacher = the full weight on it."""
    one = _build(teacher=tiny_model_cfg('retina', 8), teacher_ckpt=ckpts['t1'],
                 losses=dict(loss_pkd=_pkd(2.0)))
    two = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t1']),
                 losses=dict(loss_a=_pkd(1.0, 'a'), loss_b=_pkd(1.0, 'b')))
    two.student.load_state_dict(one.student.state_dict())
    batch = demo_batch(one)
    want = _distill_total(one, batch)
    got = _distill_total(two, copy.deepcopy(batch))
    assert want > 0
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_each_loss_reads_its_own_teacher(ckpts):
    """The loss of teacher b equals PKD computed by hand on b's FPN features."""
    d = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']),
               losses=dict(loss_a=_pkd(1.0, 'a'), loss_b=_pkd(1.0, 'b')))
    batch = demo_batch(d)
    losses = d.loss(batch['inputs'], batch['data_samples'])
    with torch.no_grad():
        s = d.student.extract_feat(batch['inputs'])
        b = d.teachers['b'].extract_feat(batch['inputs'])
        a = d.teachers['a'].extract_feat(batch['inputs'])

    def pkd(fs, ft):  # PKD (mmrazor's normalisation), summed over levels
        def norm(f):
            f = f.transpose(0, 1).flatten(1)
            return (f - f.mean(1, keepdim=True)) / (f.std(1, keepdim=True) + 1e-6)

        return sum(((norm(x) - norm(y))**2).mean() / 2 for x, y in zip(fs, ft))

    torch.testing.assert_close(losses['distill.loss_b'].detach(), pkd(s, b), rtol=1e-4, atol=0)
    torch.testing.assert_close(losses['distill.loss_a'].detach(), pkd(s, a), rtol=1e-4, atol=0)
    assert not torch.isclose(pkd(s, a), pkd(s, b))


def test_teachers_stay_frozen_and_out_of_checkpoints(ckpts):
    d = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']),
               losses=dict(loss_a=_pkd(1.0, 'a'), loss_b=_pkd(1.0, 'b')))
    before = {n: copy.deepcopy(t.state_dict()) for n, t in d.teachers.items()}
    optim = torch.optim.SGD(d.parameters(), lr=0.1)
    student_before = copy.deepcopy(d.student.state_dict())
    for _ in range(2):
        batch = demo_batch(d)
        losses = d.loss(batch['inputs'], batch['data_samples'])
        optim.zero_grad()
        d.parse_losses(losses)[0].backward()
        optim.step()
    for name, t in d.teachers.items():
        assert all(not p.requires_grad for p in t.parameters())
        for k, v in t.state_dict().items():
            assert torch.equal(v, before[name][k]), (name, k)
    # the student did train; no teacher weight is in the checkpoint or the optimizer
    assert any(not torch.equal(v, student_before[k]) for k, v in d.student.state_dict().items())
    assert all(k.startswith(('student.', 'distill_losses.', 'data_preprocessor.'))
               for k in d.state_dict())
    own = {id(p) for t in d.teachers.values() for p in t.parameters()}
    assert not own & {id(p) for p in d.parameters()}


def test_teacher_with_its_own_preprocessing(ckpts):
    """Teacher b normalises with another mean: it gets its own batch (a dict entry),
    a does not; b's records are its features on its own batch."""
    cfg_b = tiny_model_cfg('retina', 8)
    cfg_b['data_preprocessor'] = dict(cfg_b['data_preprocessor'], mean=[100.0, 110.0, 120.0])
    torch.manual_seed(0)
    d = MODELS.build(
        dict(type='Distiller', student=tiny_model_cfg('retina', 8),
             teachers=dict(a=dict(model=tiny_model_cfg('retina', 8), ckpt=ckpts['t1']),
                           b=dict(model=cfg_b, ckpt=ckpts['t2'])),
             recorders=dict(fpn=dict(source='neck')),
             distill_losses=dict(loss_b=_pkd(1.0, 'b')), probe_size=64))
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 64, 64)] * 2, num_classes=3)
    batch = d.data_preprocessor(copy.deepcopy(data), True)
    assert set(batch['teacher_inputs']) == {'b'}
    want = d.teachers['b'].data_preprocessor(copy.deepcopy(data), True)['inputs']
    torch.testing.assert_close(batch['teacher_inputs']['b'], want)
    assert not torch.allclose(want, batch['inputs'])
    d._teacher_forward(batch['inputs'], batch['teacher_inputs'])
    with torch.no_grad():
        feats = d.teachers['b'].extract_feat(want)
    for got, ref in zip(d.teacher_recorders['b'].get('fpn'), feats):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    d.reset_records()


def test_recorder_source_per_teacher(ckpts):
    """A ``teacher_source`` dict gives each teacher its own source."""
    d = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']), losses=dict(
        loss_a=_pkd(1.0, 'a')), recorders=dict(
            fpn=dict(source='neck'), deep=dict(source='neck', teacher_source=dict(b='backbone'))))
    assert d.teacher_recorders['a'].specs['deep']['source'] == 'neck'
    assert d.teacher_recorders['b'].specs['deep']['source'] == 'backbone'


@pytest.mark.parametrize('kwargs, match', [
    (dict(teacher_ckpt='x.pth'), 'either teacher'),
    (dict(), None),
])
def test_teacher_forms_are_exclusive(ckpts, kwargs, match):
    if match is None:  # no teacher at all
        with pytest.raises(ValueError, match='needs a teacher'):
            _build(losses=dict(loss_pkd=_pkd(1.0)))
        return
    with pytest.raises(ValueError, match=match):
        _build(teachers=dict(a=ckpts['t1']), losses=dict(loss_pkd=_pkd(1.0, 'a')), **kwargs)


@pytest.mark.parametrize('name', ['student', 'a.b', '1st'])
def test_bad_teacher_names(ckpts, name):
    with pytest.raises(ValueError, match='identifier'):
        _build(teachers={name: ckpts['t1']}, losses=dict(loss_pkd=_pkd(1.0, 'a')))


def test_loss_naming_a_missing_teacher_fails_at_build(ckpts):
    with pytest.raises(KeyError, match='one of the teachers'):
        _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']),
               losses=dict(loss_pkd=_pkd(1.0, 'c')))
    with pytest.raises(KeyError, match='"a.<record>"'):  # the default 'teacher.fpn'
        _build(teachers=dict(a=ckpts['t1']), losses=dict(loss_pkd=dict(type='PKDLoss')))


def test_teacher_entry_keys_are_checked(ckpts):
    with pytest.raises(ValueError, match='unknown keys'):
        MODELS.build(
            dict(type='Distiller', student=tiny_model_cfg('retina', 8),
                 teachers=dict(a=dict(model=tiny_model_cfg('retina', 8), ckpt=ckpts['t1'],
                                      weights=1.0)),
                 recorders=dict(fpn=dict(source='neck')), distill_losses={}, probe_size=64))


def test_teacher_extra_input_follows_the_records(ckpts):
    d = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']),
               losses=dict(loss_a=_pkd(1.0, 'a'), loss_b=_pkd(1.0, 'b')))
    assert d.loss_teacher('loss_b') is d.teachers['b']
    assert d.loss_teacher('loss_a') is d.teachers['a']
    assert d.teacher is d.teachers['a']  # the first, for inherit_from_teacher and tools


def test_teachers_get_the_students_batch_augments():
    """A teacher normalising like the student reuses the student's (augmented)
    batch; one normalising differently is refused while the student augments."""
    from mmdet.models.data_preprocessors import BatchSyncRandomResize, DetDataPreprocessor
    aug = [BatchSyncRandomResize(random_size_range=(32, 64), interval=1)]
    student = DetDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1], batch_augments=None)
    student.batch_augments = torch.nn.ModuleList(aug)
    same = DetDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1])
    same.batch_augments = torch.nn.ModuleList(
        [BatchSyncRandomResize(random_size_range=(32, 64), interval=1)])
    assert teacher_preprocessors(student, dict(teacher=same)) == {}
    other = DetDataPreprocessor(mean=[1, 2, 3], std=[1, 1, 1])
    with pytest.raises(ValueError, match='batch_augments'):
        teacher_preprocessors(student, dict(teacher=other))
    # without student augments the teacher keeps its normalisation, not its own augments
    plain = DetDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1])
    other.batch_augments = torch.nn.ModuleList(aug)
    out = teacher_preprocessors(plain, dict(teacher=other))
    assert out['teacher'] is other and other.batch_augments is None


def test_a_deep_copy_shares_the_teachers(ckpts):
    """mmengine's EMAHook deep-copies the model: the copy trains nothing of the
    teachers, so it shares them (no second copy in memory) and copies the rest."""
    d = _build(teachers=dict(a=ckpts['t1'], b=ckpts['t2']),
               losses=dict(loss_a=_pkd(1.0, 'a'), loss_b=_pkd(1.0, 'b')))
    twin = copy.deepcopy(d)
    assert all(twin.teachers[n] is d.teachers[n] for n in d.teachers)
    assert twin.student is not d.student and twin.distill_losses is not d.distill_losses
    for (k, a), b in zip(d.student.state_dict().items(), twin.student.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), k
    from mmengine.model import ExponentialMovingAverage
    ema = ExponentialMovingAverage(d)
    assert ema.module.teachers['a'] is d.teachers['a']
