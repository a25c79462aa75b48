import pytest
import torch
from torch import nn

from mmkd_det.models.recorders import (ModuleOutputsRecorder, RecordError, disable_inplace,
                                       find_module)


class Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.neck = nn.Conv2d(2, 2, 1)
        self.shared = nn.Conv2d(2, 3, 1)  # a head conv shared across levels
        self.act = nn.ReLU(inplace=True)
        self.pair = nn.Identity()

    def forward(self, x):
        levels = [self.neck(x), self.neck(x[..., ::2, ::2])]
        outs = [self.act(self.shared(f)) for f in levels]
        return self.pair((outs, levels))


def test_records_per_call_index_and_reset():
    model = Toy()
    disable_inplace(model)  # see test_record_changed_in_place_is_refused_not_used
    rec = ModuleOutputsRecorder(model,
                                dict(cls=dict(source='shared'), pair=dict(source='pair', index=1)))
    x = torch.randn(1, 2, 4, 4)
    with rec:
        model(x)
    cls = rec.get('cls')
    assert [t.shape[-1] for t in cls] == [4, 2]  # one record per call
    pair = rec.get('pair')
    assert len(pair) == 2 and torch.equal(pair[0], model.neck(x))
    with rec:  # a new context clears the previous iteration's records
        assert rec.num_calls('cls') == 0
    model(x)  # outside the context nothing is recorded
    assert rec.num_calls('cls') == 0


def test_nothing_captured_is_an_error_not_a_zero_loss():
    model = Toy()
    rec = ModuleOutputsRecorder(model, dict(cls=dict(source='shared')))
    with rec:
        pass
    with pytest.raises(RecordError, match='captured nothing'):
        rec.get('cls')


def test_unknown_module_names_close_matches():
    with pytest.raises(KeyError, match="'shared'"):
        find_module(Toy(), 'sharred')
    with pytest.raises(KeyError, match='unknown keys'):
        ModuleOutputsRecorder(Toy(), dict(a=dict(source='neck', idx=0)))


def test_wrapper_prefixes_are_accepted():
    model = Toy()
    assert find_module(model, 'module.neck') is model.neck
    assert find_module(model, 'student.shared') is model.shared


def test_remove_hooks():
    model = Toy()
    rec = ModuleOutputsRecorder(model, dict(cls=dict(source='shared')))
    assert len(model.shared._forward_hooks) == 1
    rec.remove()
    assert len(model.shared._forward_hooks) == 0


def test_record_changed_in_place_is_refused_not_used():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 4)
    model = Toy()
    rec = ModuleOutputsRecorder(model,
                                dict(cls=dict(source='shared'), pair=dict(source='pair', index=1)))
    expected = model.shared(model.neck(x))
    assert (expected < 0).any()
    with rec:
        model(x)
    # the inplace ReLU after `shared` overwrote both of its records (version counters)
    assert rec.modified() == ['cls']
    assert (rec._buffers['cls'][0] >= 0).all()
    with pytest.raises(RecordError, match=r"'cls'.*changed in place.*inplace_activations"):
        rec.get('cls')
    assert len(rec.get('pair')) == 2  # untouched records stay readable
    assert disable_inplace(model) == 1
    with rec:
        model(x)
    assert rec.modified() == []
    assert torch.allclose(rec.get('cls')[0], expected)


def test_make_contiguous_keeps_modified_records_refused():
    model = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU(inplace=True))
    rec = ModuleOutputsRecorder(model, dict(conv=dict(source='0')))
    x = torch.randn(1, 2, 3, 3).contiguous(memory_format=torch.channels_last)
    with rec:
        model(x)
    rec.make_contiguous()  # new tensors, but the values were already overwritten
    assert rec.modified() == ['conv']
    with pytest.raises(RecordError, match='changed in place'):
        rec.get('conv')


def test_levels_select_a_subset_and_bad_levels_fail():
    model = Toy()
    rec = ModuleOutputsRecorder(
        model,
        dict(
            last=dict(source='pair', index=1, levels=[1]),
            bad=dict(source='pair', index=1, levels=[0, 2])))
    x = torch.randn(1, 2, 4, 4)
    with rec:
        model(x)
    last = rec.get('last')
    assert len(last) == 1 and last[0].shape[-1] == 2
    with pytest.raises(RecordError, match=r'levels \[2\] out of range'):
        rec.get('bad')


def test_make_contiguous_converts_nested_records_in_place():
    from collections import namedtuple
    Out = namedtuple('Out', 'cls reg')
    model = nn.Sequential(nn.Identity())
    rec = ModuleOutputsRecorder(model, dict(out=dict(source='0')))
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
    with rec:
        model((x, [x, x[:1]], Out(x, 3)))
    rec.make_contiguous()
    (a, (b, c), out), = rec._buffers['out']
    assert isinstance(out, Out) and out.reg == 3
    for t, want in ((a, x), (b, x), (c, x[:1]), (out.cls, x)):
        assert t.is_contiguous() and torch.equal(t, want)
