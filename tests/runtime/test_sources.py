"""Sources on real and damaged inputs: the reference videos, truncated/garbage/empty files, odd image formats."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from runtime.sources import ImageSource, SourceError, VideoSource, open_source


def _count(source, limit=None):
    return sum(1 for _ in itertools.islice(source, limit))


def test_damaged_video_never_stops_early(videos):
    source = open_source(videos / "Megamind_bugy.avi")
    frames = list(source)
    assert len(frames) + source.skipped == 270
    assert all(f.image.dtype == np.uint8 and f.image.shape == (528, 720, 3) for f in frames[:3])


def test_container_claiming_more_frames(videos):
    source = open_source(videos / "tree.avi")
    assert source.total == 444
    assert _count(source) == 68
    assert any("claims 444 frames, 68 could be decoded" in n for n in source.notes)


def test_truncated_video(videos, tmp_path):
    data = (videos / "Megamind.avi").read_bytes()
    path = tmp_path / "half.avi"
    path.write_bytes(data[: len(data) // 2])
    source = open_source(path)
    n = _count(source)
    assert 50 < n < 270 and source.notes


def test_garbage_inside_a_stream(videos, tmp_path):
    data = bytearray((videos / "Megamind.avi").read_bytes())
    rng = np.random.default_rng(0)
    for frac, size in ((0.3, 30000), (0.6, 5000)):
        at = int(len(data) * frac)
        data[at:at + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "garbage.avi"
    path.write_bytes(bytes(data))
    source = open_source(path)
    n = _count(source)
    assert n > 200  # decoding went on past the garbage
    assert n + source.skipped <= 270


@pytest.mark.parametrize("content, match", [(b"", "empty"), (b"\x00\x01garbage" * 1000, "cannot open video")])
def test_unusable_files(tmp_path, content, match):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=match):
        open_source(path)


def test_missing_sources(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope.avi")
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path / "*.png"))
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path)


def test_missing_camera():
    with pytest.raises(SourceError, match="cannot open camera"):
        open_source("97")


def test_images_of_every_kind(tmp_path):
    cv2.imwrite(str(tmp_path / "a_gray.png"), np.full((20, 30), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "b_rgba.png"), np.full((21, 31, 4), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "c_16bit.png"), np.full((22, 32, 3), 40000, np.uint16))
    cv2.imwrite(str(tmp_path / "d_color.jpg"), np.full((23, 33, 3), 50, np.uint8))
    (tmp_path / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    (tmp_path / "f_empty.jpg").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path)
    assert isinstance(source, ImageSource) and source.total == 6
    frames = list(source)
    assert [f.name for f in frames] == ["a_gray", "b_rgba", "c_16bit", "d_color"]
    assert [f.image.shape for f in frames] == [(20, 30, 3), (21, 31, 3), (22, 32, 3), (23, 33, 3)]
    assert frames[2].image[0, 0, 0] == 40000 >> 8
    assert source.skipped == 2 and len(source.notes) == 2
    glob_source = open_source(str(tmp_path / "*_*.png"))
    assert glob_source.total == 4
    assert isinstance(open_source(tmp_path / "d_color.jpg"), ImageSource)


def test_video_kinds(videos):
    assert isinstance(open_source(videos / "slow_traffic_small.mp4"), VideoSource)
    assert open_source(videos / "slow_traffic_small.mp4").kind == "file"


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="the ffmpeg command is absent")
def test_video_whose_frame_size_changes_mid_stream(videos, tmp_path):
    """Two MPEG-TS segments of different sizes, concatenated: the stream goes on at the first size (FFmpeg rescales
    through OpenCV), and the runtime processes every decodable frame."""
    import subprocess
    parts = []
    for i, (video, size) in enumerate(((videos / "tree.avi", "160:120"), (videos / "Megamind.avi", "240:176"))):
        part = tmp_path / f"{i}.ts"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(video), "-frames:v", "10", "-vf",
                        f"scale={size}", "-c:v", "mpeg2video", "-q:v", "8", str(part)], check=True)
        parts.append(part.read_bytes())
    mixed = tmp_path / "mixed.ts"
    mixed.write_bytes(b"".join(parts))
    frames = list(open_source(mixed))
    assert len(frames) >= 18 and {f.image.shape for f in frames} == {(120, 160, 3)}


def test_source_kind_names_what_open_source_opens(tmp_path):
    """source_kind (which decides the video CRF) agrees with the kind of source open_source returns."""
    from runtime.sources import source_kind

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((4, 5, 3), np.uint8))
    assert [source_kind(s) for s in ("0", "rtsp://host/live", str(tmp_path), str(tmp_path / "*.png"), str(image),
                                     str(tmp_path / "clip.mp4"), "demo")] == \
        ["camera", "stream", "images", "images", "images", "file", "file"]
    for spec in (str(tmp_path), str(tmp_path / "*.png"), str(image), "demo"):
        source = open_source(spec)
        assert source.kind == source_kind(spec)
        source.close()
