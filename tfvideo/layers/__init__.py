"""Keras layers of tfvideo (import only from ``tfvideo.ops`` and ``tfvideo.losses``)."""

from tfvideo.layers.tvnet import TVNet

__all__ = ["TVNet"]
