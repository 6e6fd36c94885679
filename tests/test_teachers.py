"""Teacher flows (tfvideo.teachers) against the exact flow of a real photograph moved by a known motion."""

import numpy as np
import pytest

from tfvideo.data.items import Item
from tfvideo.demo.flow import make_frame_pair
from tfvideo.teachers import TEACHERS, FlowTeacher, TeacherFlowItem


def _epe(a, b, margin=8):
    d = np.linalg.norm(a - b, axis=-1)
    return float(d[margin:-margin, margin:-margin].mean())


@pytest.fixture(scope="module")
def pair():
    return make_frame_pair((64, 96), seed=1, photo="astronaut", max_motion=2.5)


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_follows_exact_motion(pair, name):
    frames = np.stack([pair.frame0, pair.frame1, pair.frame0])
    teacher = FlowTeacher(name, iterations=30) if name == "tvnet" else FlowTeacher(name)
    flows = teacher(frames)
    assert flows.shape == (2, 64, 96, 2) and flows.dtype == np.float32
    zero = _epe(np.zeros_like(pair.flow), pair.flow)
    epe = _epe(flows[0], pair.flow)
    # every teacher recovers the motion far better than predicting none (a wrong sign or axis order
    # would make it worse than zero)
    assert epe < 0.35 * zero, (name, epe, zero)


def test_tvnet_batches_cover_every_pair(pair):
    # 5 frames with batch_size 2: batches (0,1), (2,3) -> every consecutive pair exactly once
    frames = np.stack([pair.frame0, pair.frame1] * 2 + [pair.frame0])
    flows = FlowTeacher("tvnet", scales=1, warps=1, iterations=5, batch_size=2)(frames)
    one = FlowTeacher("tvnet", scales=1, warps=1, iterations=5, batch_size=8)(frames)
    assert flows.shape == (4, 64, 96, 2)
    np.testing.assert_allclose(flows, one, atol=1e-4)
    # pairs (0->1) and (2->3) are the same pair; (1->2) is its reverse: roughly opposite flows
    np.testing.assert_allclose(flows[0], flows[2], atol=1e-4)
    assert np.mean(flows[0] * flows[1]) < 0


class _Fake(Item):
    def load(self, short_side=None, fps=None):
        frames = np.random.default_rng(0).integers(0, 255, (3, 32, 40, 3), dtype=np.uint8)
        return {"frames": frames, "fps": 25.0, "flows": np.ones((2, 32, 40, 2), np.float32),
                "segmentations": np.zeros((3, 32, 40), np.uint8)}


def test_item_replaces_flows_and_keeps_the_rest():
    item = FlowTeacher("dis").wrap(_Fake(video_id="v", label=3, label_text="c", source="s"))
    assert isinstance(item, TeacherFlowItem) and (item.video_id, item.label) == ("v", 3)
    out = item.load()
    assert out["flows"].shape == (2, 32, 40, 2) and not np.all(out["flows"] == 1)
    assert out["flow_frame_index"].tolist() == [0, 1] and out["flow_valid"] is None
    assert out["segmentations"].shape == (3, 32, 40)
    import pickle

    assert pickle.loads(pickle.dumps(item)).teacher.settings() == {"name": "dis"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="teacher must be one of"):
        FlowTeacher("brox")
    with pytest.raises(ValueError, match="only apply to the 'tvnet'"):
        FlowTeacher("tvl1", iterations=10)
    with pytest.raises(ValueError, match="iterations must be a positive int"):
        FlowTeacher("tvnet", iterations=0)
    with pytest.raises(ValueError, match="frames must be uint8"):
        FlowTeacher("dis")(np.zeros((1, 8, 8, 3), np.uint8))
    assert FlowTeacher("tvnet").settings() == {"name": "tvnet", "scales": 3, "warps": 5, "iterations": 50}


def test_prepare_stores_the_teachers_flows_and_refuses_another_teacher(tmp_path):
    """prepare(item_transform=FlowTeacher): shards hold the teacher's flows of the stored frames."""
    import tensorflow as tf

    from tfvideo.data import schema
    from tfvideo.data.prepare import check_reusable, prepare
    from tfvideo.data.shards import shard_files

    opts = {"train_videos": 2, "test_videos": 2, "num_frames": 4, "size": (32, 48)}
    videos = str(tmp_path / "videos")
    out = str(tmp_path / "teacher")
    summary = prepare("objects", out, videos, objects_options=opts, item_transform=FlowTeacher("dis"),
                      progress=False, log=None)
    assert summary["videos"] == 4
    record = next(iter(tf.data.TFRecordDataset(shard_files(out, "train"))))
    parsed = schema.parse_sequence_example(record, flow=True)
    frames = schema.decode_frames(parsed[schema.IMAGE]).numpy()
    flows = schema.decode_flows(parsed[schema.FLOW], 32, 48)[0].numpy()
    expected = FlowTeacher("dis")(frames)  # the teacher on the stored (JPEG-decoded) frames ~ on the source
    assert flows.shape == (3, 32, 48, 2)
    assert np.mean(np.abs(flows - expected)) < 0.3  # float16 storage; JPEG re-encoding of the input
    with pytest.raises(ValueError, match="item_transform"):
        check_reusable("objects", out, videos, objects_options=opts, item_transform=FlowTeacher("tvl1"))
    check_reusable("objects", out, videos, objects_options=opts, item_transform=FlowTeacher("dis"))
