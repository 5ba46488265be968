"""Class sets: names, palettes, defaults by class count, files, and classes that do not fit."""
from __future__ import annotations

import pytest

from export.classes import COCOSTUFF, ClassesError, resolve


def test_defaults_by_class_count():
    assert resolve(None, 21).name == "voc" and resolve(None, 21).names[15] == "person"
    city = resolve(None, 19)
    assert city.name == "cityscapes" and city.names[13] == "car" and city.palette[13] == (0, 0, 142)
    coco = resolve(None, 182)
    assert coco.name == "cocostuff" and len(COCOSTUFF) == 182 and coco.names[:2] == ("person", "bicycle")
    assert coco.names[-1] == "wood" and len(set(coco.palette)) == 182
    assert resolve(None, 5).names == tuple(f"class_{i}" for i in range(5))


def test_explicit_set_file_and_checkpoint_names(tmp_path):
    (tmp_path / "names.txt").write_text("sky\n\nground\n")
    chosen = resolve(str(tmp_path / "names.txt"), 2, ("a", "b"))
    assert chosen.names == ("sky", "ground") and chosen.name == "file" and len(chosen.palette) == 2
    assert resolve(None, 2, ("a", "b")).names == ("a", "b")
    assert resolve("cityscapes", 19, tuple("abcdefghijklmnopqrs")).name == "cityscapes"
    assert resolve("voc", 21).metadata()["palette"][1] == [128, 0, 0]


def test_classes_that_do_not_fit(tmp_path):
    with pytest.raises(ClassesError, match="'cityscapes' lists 19 class names for a model with 21 classes"):
        resolve("cityscapes", 21)
    with pytest.raises(ClassesError, match="cannot read class names"):
        resolve(str(tmp_path / "absent.txt"), 3)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ClassesError, match="lists no names"):
        resolve(str(tmp_path / "empty.txt"), 3)
