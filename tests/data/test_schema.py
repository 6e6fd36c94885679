import numpy as np
import pytest
import tensorflow as tf

from tfvideo.data import schema


def example_fields():
    rng = np.random.default_rng(0)
    frames = np.zeros((5, 16, 24, 3), np.uint8)
    frames[..., 0] = np.arange(24) * 10  # smooth content: JPEG error stays small
    frames[..., 1] = (np.arange(16) * 15)[:, None]
    frames[..., 2] = (40 * np.arange(5))[:, None, None]
    flows = rng.normal(0, 3, (2, 16, 24, 2)).astype(np.float32)
    valid = np.ones((2, 16, 24), bool)
    valid[1, 3, 4] = False
    seg = rng.integers(0, 8, (1, 16, 24)).astype(np.uint8)
    seg[0, 0, 0] = 255
    return dict(frames=frames, label=7, label_text="pan_left", video_id="pan_left/clip_003",
                fps=12.5, flows=flows, flow_frame_index=[0, 3], flow_valid=valid,
                segmentations=seg, segmentation_frame_index=[4])


def test_round_trip_of_every_field():
    f = example_fields()
    serialized = schema.make_sequence_example(**f).SerializeToString()
    d = schema.parse_sequence_example(tf.constant(serialized), flow=True, segmentation=True)
    assert int(d[schema.LABEL_INDEX]) == 7
    assert d[schema.LABEL_TEXT].numpy().decode() == "pan_left"
    assert d[schema.VIDEO_ID].numpy().decode() == "pan_left/clip_003"
    assert float(d[schema.FPS]) == pytest.approx(12.5)
    assert (int(d[schema.HEIGHT]), int(d[schema.WIDTH]), int(d[schema.NUM_FRAMES])) == (16, 24, 5)
    frames = schema.decode_frames(d[schema.IMAGE]).numpy()
    assert frames.shape == (5, 16, 24, 3)
    assert np.abs(frames.astype(int) - f["frames"]).mean() < 2.0
    np.testing.assert_array_equal(d[schema.FLOW_INDEX].numpy(), [0, 3])
    flow, valid = schema.decode_flows(d[schema.FLOW], d[schema.HEIGHT], d[schema.WIDTH])
    np.testing.assert_array_equal(valid.numpy(), f["flow_valid"])
    # float16 keeps 11 significant bits: relative error <= 2^-11
    np.testing.assert_allclose(flow.numpy()[valid.numpy()], f["flows"][f["flow_valid"]],
                               rtol=2**-11, atol=1e-7)
    assert flow.numpy()[1, 3, 4].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(d[schema.SEGMENTATION_INDEX].numpy(), [4])
    np.testing.assert_array_equal(schema.decode_segmentations(d[schema.SEGMENTATION]).numpy(),
                                  f["segmentations"])


def test_model_garden_video_reader_keys_parse():
    """TF Model Garden's video_input parses these exact features (written out here on purpose)."""
    serialized = schema.make_sequence_example(**example_fields()).SerializeToString()
    context, sequence = tf.io.parse_single_sequence_example(
        serialized, context_features={"clip/label/index": tf.io.VarLenFeature(tf.int64)},
        sequence_features={"image/encoded": tf.io.FixedLenSequenceFeature((), tf.string)})
    assert tf.sparse.to_dense(context["clip/label/index"]).numpy().tolist() == [7]
    assert sequence["image/encoded"].shape == (5,)
    assert tf.io.decode_jpeg(sequence["image/encoded"][0]).shape == (16, 24, 3)


def test_optional_lists_absent_parse_as_empty():
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    d = schema.parse_sequence_example(schema.make_sequence_example(frames).SerializeToString(),
                                      flow=True, segmentation=True)
    assert d[schema.FLOW].shape == (0,) and d[schema.SEGMENTATION_INDEX].shape == (0,)
    assert int(d[schema.LABEL_INDEX]) == -1


@pytest.mark.parametrize("kwargs, match", [
    (dict(frames=np.zeros((3, 8, 8), np.uint8)), "frames must be uint8"),
    (dict(flows=np.zeros((1, 8, 9, 2))), "flows must be"),
    (dict(flows=np.zeros((1, 8, 8, 2)), flow_frame_index=[2]), "flow_frame_index"),
    (dict(segmentations=np.zeros((1, 8, 8), np.uint8), segmentation_frame_index=[5]),
     "segmentation_frame_index"),
    (dict(segmentations=np.zeros((1, 8, 8), np.int32)), "segmentation must be uint8"),
])
def test_bad_fields_are_named(kwargs, match):
    args = dict(frames=np.zeros((3, 8, 8, 3), np.uint8))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        schema.make_sequence_example(**args)
