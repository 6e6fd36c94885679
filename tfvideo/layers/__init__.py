"""Keras layers of tfvideo (import only from ``tfvideo.ops`` and ``tfvideo.losses``)."""

from tfvideo.layers.dff import BilinearUpsampling, CropToFrame, KeyOrPropagated, PairFrame
from tfvideo.layers.feature_warp import FeatureWarp
from tfvideo.layers.flow_stack import FlowImages, FlowStack
from tfvideo.layers.lstm import DeepLSTM, GainWeightedAverage, PeepholeLSTMCell
from tfvideo.layers.rfcn import ChannelSlice, DetectionOutput, PSRoIVote, RPNProposals
from tfvideo.layers.segments import (TWO_STREAM_WEIGHTS, FuseScores, PerSegment, RGBPreprocess,
                                     SegmentConsensus, TakeFrame)
from tfvideo.layers.tdn import (TDN_FUSION_WEIGHTS, FoldSegments, L1FuseScores, StackChannels,
                                TemporalDifference, UnfoldSegments)
from tfvideo.layers.temporal_pooling import (FlattenTowers, TemporalMaxPooling,
                                             TemporalWindowMaxPooling, TimeDomainConvolution)
from tfvideo.layers.tvnet import TVNet
from tfvideo.layers.vlad import VLAD, LocalL2Normalize, NetVLAD
from tfvideo.layers.v2v import (C3D_MEAN_GREY, C3D_MEAN_RGB, AlphaScale, ClipAtInference,
                                ClipSizeCheck, SubtractMean, TrilinearUpsampling)

__all__ = ["TVNet", "FlowStack", "TakeFrame", "RGBPreprocess", "PerSegment", "SegmentConsensus",
           "FuseScores", "TWO_STREAM_WEIGHTS", "SubtractMean", "ClipSizeCheck", "AlphaScale",
           "ClipAtInference", "TrilinearUpsampling", "C3D_MEAN_RGB", "C3D_MEAN_GREY", "FeatureWarp", "CropToFrame", "KeyOrPropagated", "PairFrame", "BilinearUpsampling",
           "ChannelSlice", "RPNProposals", "PSRoIVote", "DetectionOutput",
           "TemporalMaxPooling", "TemporalWindowMaxPooling", "FlattenTowers", "TimeDomainConvolution",
           "FlowImages", "PeepholeLSTMCell", "DeepLSTM", "GainWeightedAverage",
           "TemporalDifference", "FoldSegments", "UnfoldSegments", "StackChannels", "L1FuseScores",
           "TDN_FUSION_WEIGHTS", "LocalL2Normalize", "VLAD", "NetVLAD"]
