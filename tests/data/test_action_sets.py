import os

import pytest

from tests.data.fakes import hmdb51_tree, numbered_frames, ucf101_tree
from tfvideo.data import action_sets
from tfvideo.data.items import ReadError
from tfvideo.data.video import write_video


def ids(items):
    return sorted(i.video_id for i in items)


def test_hmdb51_split_files_parse_to_the_expected_subsets(tmp_path):
    expected = hmdb51_tree(str(tmp_path))
    listing = action_sets.hmdb51(str(tmp_path), split=1)
    assert listing.classes == ["jump", "run"]
    # split 1: code 1 = train, 2 = test, 0 = unused; the broken videos are listed (decoding
    # them is the writer's job), so they are in the listing
    assert ids(listing.splits["train"]) == sorted(expected["train"] + ["jump/corrupt"])
    assert ids(listing.splits["test"]) == sorted(expected["test"] + ["run/empty"])
    labels = {i.video_id: (i.label, i.label_text) for s in listing.splits.values() for i in s}
    assert labels["run/run_0"] == (1, "run") and labels["jump/jump_1"] == (0, "jump")
    assert listing.problems == []
    swapped = action_sets.hmdb51(str(tmp_path), split=2)  # the fake swaps 1 and 2 in split 2
    assert ids(swapped.splits["train"]) == ids(listing.splits["test"])


def test_hmdb51_missing_videos_and_bad_lines_are_problems(tmp_path):
    hmdb51_tree(str(tmp_path))
    with open(tmp_path / "testTrainMulti_7030_splits" / "run_test_split1.txt", "a") as f:
        f.write("ghost.avi 1\nrun_0.avi 7\n")
    listing = action_sets.hmdb51(str(tmp_path), split=1)
    reasons = dict(listing.problems)
    assert reasons[str(tmp_path / "run" / "ghost.avi")] == "listed in run_test_split1.txt but missing"
    bad_line = [r for p, r in listing.problems if p.endswith("run_test_split1.txt:6")]
    assert bad_line and "0|1|2" in bad_line[0]


def test_hmdb51_layout_errors_name_the_layout(tmp_path):
    with pytest.raises(ValueError, match="testTrainMulti_7030_splits"):
        action_sets.hmdb51(str(tmp_path), split=1)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        action_sets.hmdb51(str(tmp_path), split=4)


def test_ucf101_lists_labels_and_case_quirk(tmp_path):
    expected = ucf101_tree(str(tmp_path))
    listing = action_sets.ucf101(str(tmp_path), split=1)
    assert listing.classes == ["ApplyEyeMakeup", "HandstandPushups"]
    assert ids(listing.splits["train"]) == sorted(
        expected["train"] + ["ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01"])
    assert ids(listing.splits["test"]) == sorted(
        expected["test"] + ["HandstandPushups/v_HandStandPushups_g02_c01"])
    labels = {i.video_id: i.label for s in listing.splits.values() for i in s}
    assert labels["HandstandPushups/v_HandStandPushups_g01_c01"] == 1  # from the folder
    assert labels["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"] == 0  # classInd is 1-based
    assert listing.problems == []


def test_ucf101_inconsistent_lines_are_problems(tmp_path):
    ucf101_tree(str(tmp_path))
    with open(tmp_path / "ucfTrainTestlist" / "trainlist01.txt", "a") as f:
        f.write("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 2\n"  # label disagrees with folder
                "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 9\n"  # out of range
                "Nope/v_Nope_g01_c01.avi 1\n")
    problems = [r for _, r in action_sets.ucf101(str(tmp_path), split=1).problems]
    assert problems == ["label 2 (HandstandPushups) disagrees with folder ApplyEyeMakeup (1)",
                        "label 9 out of range 1..2", "class folder 'Nope' is not in classInd.txt"]


def test_folder_layouts(tmp_path):
    for k in range(10):
        write_video(str(tmp_path / "flat" / ("a" if k % 2 else "b") / f"v{k}.mp4"),
                    numbered_frames(2))
    listing = action_sets.folder(str(tmp_path / "flat"))
    assert listing.classes == ["a", "b"] and list(listing.splits) == ["train"]
    assert len(listing.splits["train"]) == 10
    held = action_sets.folder(str(tmp_path / "flat"), test_fraction=0.5)
    assert ids(held.splits["train"] + held.splits["test"]) == ids(listing.splits["train"])
    assert held.splits["test"] and held.splits["train"]
    assert ids(held.splits["test"]) == ids(action_sets.folder(str(tmp_path / "flat"), 0.5)
                                           .splits["test"])  # deterministic
    for split in ("train", "test"):
        write_video(str(tmp_path / "tree" / split / "x" / "v.avi"), numbered_frames(2))
    (tmp_path / "tree" / "train" / "x" / "notes.txt").write_text("not a video")
    tree = action_sets.folder(str(tmp_path / "tree"))
    assert {k: ids(v) for k, v in tree.splits.items()} == {"train": ["x/v"], "test": ["x/v"]}
    os.makedirs(tmp_path / "none")
    with pytest.raises(ValueError, match="no class subfolders"):
        action_sets.folder(str(tmp_path / "none"))


def test_video_items_load_their_video_and_items_does_not_import_video(tmp_path):
    import subprocess
    import sys

    path = str(tmp_path / "run" / "clip.avi")
    write_video(path, numbered_frames(6, size=(24, 32)), fps=10)
    item = action_sets.VideoItem("run/clip", 1, "run", path)
    fields = item.load(short_side=12)
    assert fields["frames"].shape == (6, 12, 16, 3) and fields["fps"] == 10.0
    with pytest.raises(ReadError, match="does not exist"):
        action_sets.VideoItem("run/ghost", 1, "run", str(tmp_path / "ghost.avi")).load()
    # items.py is the bottom of the data package: no import circle with video.py any more
    code = "import sys, tfvideo.data.items; print('tfvideo.data.video' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
