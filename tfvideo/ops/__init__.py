"""Differentiable tensor ops (no Keras layers here)."""

from tfvideo.ops.warp import (
    backward_warp,
    dense_image_warp,
    interpolate_bicubic,
    interpolate_bilinear,
    opencv_flow_to_tfa,
    tfa_flow_to_opencv,
)
from tfvideo.ops.flow import endpoint_error, flow_to_color, resize_flow

__all__ = [
    "backward_warp",
    "dense_image_warp",
    "interpolate_bicubic",
    "interpolate_bilinear",
    "opencv_flow_to_tfa",
    "tfa_flow_to_opencv",
    "endpoint_error",
    "flow_to_color",
    "resize_flow",
]
