"""Stream specs (NAME=SOURCE, source lists, names) and the latest-frame inbox of live streams."""
from __future__ import annotations

import threading

import pytest

from runtime.sources import Frame
from runtime.streams import (Inbox, Prepared, SpecError, StreamCounters, StreamSpec, default_name, parse_stream,
                             read_sources_file, unique_names)


@pytest.mark.parametrize("text, name, source", [
    ("demo", "demo", "demo"),
    ("0", "cam0", "0"),
    ("videos/street.mp4", "street", "videos/street.mp4"),
    ("rtsp://10.0.0.2:554/live/main", "10.0.0.2-live-main", "rtsp://10.0.0.2:554/live/main"),
    ("http://cam/x.mjpg?user=a&res=hd", "cam-x", "http://cam/x.mjpg?user=a&res=hd"),  # '=' inside a URL
    ("door=rtsp://cam/a?b=c", "door", "rtsp://cam/a?b=c"),
    ("  lobby.1 = photos/*.jpg ", "lobby.1", "photos/*.jpg"),
])
def test_parse(text, name, source):
    spec = parse_stream(text)
    assert (spec.name, spec.source) == (name, source)


def test_names_are_unique():
    specs = unique_names([parse_stream(t) for t in ("a/clip.mp4", "b/clip.mp4", "clip=c.mp4")])
    assert [s.name for s in specs] == ["clip-2", "clip-3", "clip"]  # a name given explicitly wins
    with pytest.raises(SpecError, match="given twice"):
        unique_names([parse_stream("x=a.mp4"), parse_stream("x=b.mp4")])
    assert default_name("///") == "stream"


def test_sources_file(tmp_path):
    path = tmp_path / "cams.txt"
    path.write_text("# cameras\n\nfront=rtsp://a/live\n   0\n")
    assert read_sources_file(path) == [StreamSpec("front", "rtsp://a/live", True), StreamSpec("cam0", "0")]
    (tmp_path / "ok.mp4").write_bytes(b"x")
    path.write_text(f"{tmp_path / 'ok.mp4'}\n=nameless.mp4\n")
    with pytest.raises(SpecError, match=r"cams.txt:2: bad stream name ''"):
        read_sources_file(path)


def test_sources_file_grammar(tmp_path):
    """[NAME=]SOURCE per line; '#' at the start or after a space begins a comment; blank lines are skipped; a bad
    line is an error naming its number."""
    clip = tmp_path / "clip#1.mp4"  # '#' inside a name is part of it
    clip.write_bytes(b"x")
    path = tmp_path / "cams.txt"
    path.write_text(f"  # lobby\n\nlobby={clip}   # the lobby camera\ndoor=http://cam/a#frag\n\t\n")
    assert read_sources_file(path) == [StreamSpec("lobby", str(clip), True),
                                       StreamSpec("door", "http://cam/a#frag", True)]
    for text, message in ((f"{clip}\nbad line here\n", r"cams.txt:2: expected one \[NAME=\]SOURCE, got 'bad line here'"),
                          (f"{clip}\n\nb={tmp_path / 'missing.mp4'}\n", r"cams.txt:3: source not found: .*missing"),
                          ("bad_line_here\n", r"cams.txt:1: source not found: bad_line_here")):
        path.write_text(text)
        with pytest.raises(SpecError, match=message):
            read_sources_file(path)


def _item(k: int) -> Prepared:
    return Prepared("s", Frame(k, f"{k}", None), None, None, 0.0)  # type: ignore[arg-type]


def test_live_inbox_keeps_the_latest_and_counts_drops():
    counters = StreamCounters()
    inbox = Inbox(True, 2, threading.Condition(), counters)
    for k in range(5):
        assert inbox.put(_item(k), threading.Event())
    assert [p.frame.index for p in inbox.items] == [4] and counters.dropped == 4


def test_file_inbox_waits_for_room():
    counters = StreamCounters()
    cond = threading.Condition()
    inbox, stop = Inbox(False, 2, cond, counters), threading.Event()
    inbox.put(_item(0), stop)
    inbox.put(_item(1), stop)
    blocked = threading.Thread(target=inbox.put, args=(_item(2), stop))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # full: the reader waits instead of dropping
    with cond:
        inbox.items.pop(0)
        cond.notify_all()
    blocked.join(5)
    assert [p.frame.index for p in inbox.items] == [1, 2] and counters.dropped == 0
