"""Keras layers of tfvideo (import only from ``tfvideo.ops`` and ``tfvideo.losses``)."""

from tfvideo.layers.flow_stack import FlowStack
from tfvideo.layers.segments import (TWO_STREAM_WEIGHTS, FuseScores, PerSegment, RGBPreprocess,
                                     SegmentConsensus, TakeFrame)
from tfvideo.layers.tvnet import TVNet

__all__ = ["TVNet", "FlowStack", "TakeFrame", "RGBPreprocess", "PerSegment", "SegmentConsensus",
           "FuseScores", "TWO_STREAM_WEIGHTS"]
