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
from tfvideo.ops.boxes import (
    ANCHOR_STDS,
    BBOX_STDS,
    anchor_targets,
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    filter_small,
    generate_anchors,
    nms,
    proposal_targets,
    proposals,
    shifted_anchors,
)
from tfvideo.ops.psroi import ps_vote, psroi_pool

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
    "ANCHOR_STDS",
    "BBOX_STDS",
    "anchor_targets",
    "box_iou",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "filter_small",
    "generate_anchors",
    "nms",
    "proposal_targets",
    "proposals",
    "shifted_anchors",
    "ps_vote",
    "psroi_pool",
]
