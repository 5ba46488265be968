"""The demo video renderer: a playable mp4v file with the requested frames, and per-frame labels."""
import cv2
import numpy as np
import pytest

from demo.video import write_video
from export.voc import read_label


def test_video_has_the_frames_and_size(tmp_path):
    out = write_video(tmp_path / "v.mp4", count=6, seed=1, width=128, height=96, labels_dir=tmp_path / "labels",
                      progress=False)
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 6
    assert frames[0].shape == (96, 128, 3)
    assert not np.array_equal(frames[0], frames[5])  # things move
    labels = [read_label(tmp_path / "labels" / f"{k:06d}.png") for k in range(6)]
    assert labels[0].shape == (96, 128)
    assert not np.array_equal(labels[0], labels[5])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_video_needs_a_container_suffix(tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        write_video(tmp_path / "video", count=2, progress=False)
