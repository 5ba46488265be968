"""Overlay videos: H.264 that browsers play (checked with ffprobe) when PyAV is installed, mp4v with a warning when
not; odd frame sizes; the file appears only when complete."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from runtime.sinks import OverlayVideoSink
from runtime.sources import Frame

FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe not installed (Debian package ffmpeg)")


def probe(path) -> dict:
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                          "stream=codec_name,pix_fmt,width,height,nb_read_frames", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"][0]


def write_frames(path, n: int, width: int, height: int) -> OverlayVideoSink:
    rng = np.random.default_rng(0)
    sink = OverlayVideoSink(path, fps=15)
    for i in range(n):
        image = rng.integers(0, 256, (height, width, 3), np.uint8)
        labels = np.zeros((height, width), np.uint8)
        labels[height // 4: height // 2, width // 4: width // 2] = 1 + i % 3
        sink.write(Frame(i, f"{i:06d}", image), labels)
        assert not path.exists()  # only the temporary file, until close
    sink.close()
    return sink


@needs_ffprobe
@pytest.mark.parametrize("width, height", [(64, 48), (65, 49)])
def test_mp4_is_h264_with_pyav(tmp_path, width, height):
    pytest.importorskip("av")
    path = tmp_path / "out.mp4"
    sink = write_frames(path, 12, width, height)
    assert sink.codec == "h264"
    info = probe(path)
    assert info["codec_name"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (width + width % 2, height + height % 2)
    assert int(info["nb_read_frames"]) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@needs_ffprobe
def test_mp4_without_pyav_is_mp4v_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, as where it is not installed
    path = tmp_path / "out.mp4"
    sink = write_frames(path, 5, 64, 48)
    assert sink.codec == "mp4v"
    assert probe(path)["codec_name"] == "mpeg4" and int(probe(path)["nb_read_frames"]) == 5
    assert "writing mp4v, which browsers do not play; `pip install av` writes H.264" in caplog.text


@needs_ffprobe
def test_avi_stays_mjpeg(tmp_path):
    sink = write_frames(tmp_path / "out.avi", 3, 64, 48)
    assert sink.codec == "MJPG" and probe(tmp_path / "out.avi")["codec_name"] == "mjpeg"


def test_output_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "rofile").write_text("a file")
    with pytest.raises(NotADirectoryError) as e:
        OverlayVideoSink(tmp_path / "rofile" / "x.mp4")
    assert str(e.value) == (f"cannot write {tmp_path / 'rofile' / 'x.mp4'}: {tmp_path / 'rofile'} is a file, "
                            "not a directory")


def test_describe_says_what_was_written(tmp_path):
    sink = OverlayVideoSink(tmp_path / "none.avi")
    sink.close()
    assert sink.describe() == "" and not (tmp_path / "none.avi").exists()
    sink = write_frames(tmp_path / "out.avi", 2, 64, 48)
    assert sink.describe() == f"{tmp_path / 'out.avi'} (2 frames, MJPEG)"


def test_overlays_carry_a_legend_of_the_classes_shown():
    from runtime.palette import PALETTE
    from runtime.sinks import labelled_overlay, overlay

    image = np.full((120, 160, 3), 90, np.uint8)
    labels = np.zeros((120, 160), np.uint8)
    labels[60:, :] = 2
    plain = overlay(image, labels)
    shown = labelled_overlay(image, labels, ("background", "disc", "square"))
    changed = np.nonzero(np.any(shown != plain, axis=2))
    assert changed[0].max() < 16 and changed[1].max() < 80  # one row in the top-left corner: "square" only
    swatch = shown[3 + 4, 3 + 4]  # the swatch has the class's palette colour (BGR)
    assert tuple(swatch) == tuple(PALETTE[2][::-1])
    assert np.array_equal(labelled_overlay(image, labels, None), plain)


def test_palette_of_a_model():
    from runtime.metadata import ModelMeta
    from runtime.palette import PALETTE, palette_of

    meta = ModelMeta(class_names=("road", "sidewalk"), extra={"palette": [[128, 64, 128], [244, 35, 232]]})
    palette = palette_of(meta)
    assert palette[:2].tolist() == [[128, 64, 128], [244, 35, 232]]
    assert (palette[2:] == PALETTE[2:]).all()  # entries it does not list keep the VOC colours
    assert (palette_of(ModelMeta(class_names=("a",))) == PALETTE).all()
    assert (palette_of(ModelMeta(class_names=("a",), extra={"palette": [[300, 0, 0]]})) == PALETTE).all()
