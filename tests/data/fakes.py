"""Tiny fake dataset trees on disk for the data tests (HMDB51 and UCF101 layouts)."""

import os

import numpy as np

from tfvideo.data.video import write_video


def numbered_frames(num_frames, value0=0, size=(24, 32)):
    """Constant grey frames whose value identifies them: frame k is ``value0 + 8 * k``."""
    values = value0 + 8 * np.arange(num_frames)
    return np.broadcast_to(values[:, None, None, None].astype(np.uint8),
                           (num_frames, *size, 3)).copy()


def write_corrupt(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 4)


def write_empty(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def hmdb51_tree(root, *, frames=6):
    """Two classes with 3 good videos each (codes 1, 2, 0), plus per class one video listed but
    broken: ``jump/corrupt.avi`` (garbage bytes, split code 1) and ``run/empty.avi`` (0 bytes,
    code 2). Split 2 swaps the train/test codes. Returns the expected good ids per split 1 subset."""
    splits = os.path.join(root, "testTrainMulti_7030_splits")
    os.makedirs(splits, exist_ok=True)
    for c, name in enumerate(["jump", "run"]):
        for k in range(3):
            write_video(os.path.join(root, name, f"{name}_{k}.avi"),
                        numbered_frames(frames, value0=40 * c + k))
        bad = "corrupt.avi" if name == "jump" else "empty.avi"
        (write_corrupt if name == "jump" else write_empty)(os.path.join(root, name, bad))
        codes = {f"{name}_0.avi": 1, f"{name}_1.avi": 2, f"{name}_2.avi": 0,
                 bad: 1 if name == "jump" else 2}
        for split in (1, 2, 3):
            with open(os.path.join(splits, f"{name}_test_split{split}.txt"), "w") as f:
                for video, code in codes.items():
                    if split == 2 and code:
                        code = 3 - code
                    f.write(f"{video} {code} \n")
    return {"train": ["jump/jump_0", "run/run_0"], "test": ["jump/jump_1", "run/run_1"]}


def ucf101_tree(root, *, frames=6):
    """Classes ApplyEyeMakeup (1) and HandstandPushups (2), with UCF's case quirk
    (``HandstandPushups/v_HandStandPushups_...``) in the file names, one empty and one corrupt video."""
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)
    with open(os.path.join(lists, "classInd.txt"), "w") as f:
        f.write("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    videos = {
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": "good",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": "good",
        "HandstandPushups/v_HandStandPushups_g08_c01.avi": "good",
        "HandstandPushups/v_HandStandPushups_g01_c01.avi": "good",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi": "empty",
        "HandstandPushups/v_HandStandPushups_g02_c01.avi": "corrupt",
    }
    for k, (rel, kind) in enumerate(videos.items()):
        path = os.path.join(root, rel)
        if kind == "good":
            write_video(path, numbered_frames(frames, value0=k))
        else:
            (write_empty if kind == "empty" else write_corrupt)(path)
    for split in (1, 2, 3):
        with open(os.path.join(lists, f"trainlist0{split}.txt"), "w") as f:
            f.write("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                    "HandstandPushups/v_HandstandPushups_g08_c01.avi 2\n"  # case differs on disk
                    "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\n")
        with open(os.path.join(lists, f"testlist0{split}.txt"), "w") as f:
            f.write("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                    "HandstandPushups/v_HandStandPushups_g01_c01.avi\n"
                    "HandstandPushups/v_HandStandPushups_g02_c01.avi\n")
    return {"train": ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01",
                      "HandstandPushups/v_HandStandPushups_g08_c01"],
            "test": ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01",
                     "HandstandPushups/v_HandStandPushups_g01_c01"]}


def tree_state(root):
    """{relative path: (inode, size, mtime_ns)} of every file and folder under ``root``.

    A rewrite shows: the dataset writes through temp files renamed into place (a new inode, or a reused
    one with a new mtime), and creating or deleting a temp file changes its folder's mtime.
    """
    state = {}
    for d, _, files in os.walk(root):
        for path in [d, *(os.path.join(d, f) for f in files)]:
            st = os.stat(path)
            state[os.path.relpath(path, root)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state
