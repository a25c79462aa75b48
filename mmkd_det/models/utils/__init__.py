"""Helpers shared by losses."""
from .dense_head_outputs import DenseOutputs, decode_dense_outputs
from .pointwise_conv import PointwiseConv2d, pointwise_convs

__all__ = ['DenseOutputs', 'decode_dense_outputs', 'PointwiseConv2d', 'pointwise_convs']
