"""Helpers shared by losses."""
from .dense_head_outputs import DenseOutputs, decode_dense_outputs

__all__ = ['DenseOutputs', 'decode_dense_outputs']
