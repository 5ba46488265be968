"""VOC layout reader/writer: round trip, and a clear error for each broken input."""
import numpy as np
import pytest
from PIL import Image

from export import voc
from export.voc import DatasetError, VOCDataset


def _dataset(root, ids=("a", "b"), size=(32, 24)):
    w, h = size
    rng = np.random.default_rng(0)
    for i in ids:
        voc.write_image(root / "JPEGImages" / f"{i}.jpg", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        labels = rng.integers(0, 4, (h, w)).astype(np.uint8)
        labels[0, 0] = 255
        voc.write_label(root / "SegmentationClass" / f"{i}.png", labels)
    voc.write_split(root, "val", ids)
    voc.write_classes(root, ["bg", "x", "y", "z"])
    return root


def test_round_trip(tmp_path):
    labels = np.arange(48, dtype=np.uint8).reshape(6, 8)
    labels[0, 0] = 255
    voc.write_label(tmp_path / "l.png", labels)
    with Image.open(tmp_path / "l.png") as img:
        assert img.mode == "P"
        assert img.getpalette()[3:6] == [128, 0, 0]  # VOC colour of class 1
    assert np.array_equal(voc.read_label(tmp_path / "l.png"), labels)
    ds = VOCDataset(_dataset(tmp_path / "d"))
    assert len(ds) == 2 and ds.class_names == ["bg", "x", "y", "z"]
    image, lab = ds[1]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8 and lab.shape == (24, 32)
    assert len(list(ds)) == 2


def test_voc_palette_matches_the_reference_colours():
    p = voc.voc_palette()
    assert p[0].tolist() == [0, 0, 0] and p[15].tolist() == [192, 128, 128] and p[255].tolist() == [224, 224, 192]


def test_grayscale_index_labels_are_accepted(tmp_path):
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    Image.fromarray(labels, mode="L").save(tmp_path / "l.png")
    assert np.array_equal(voc.read_label(tmp_path / "l.png"), labels)


def test_missing_directory_split_image_and_label(tmp_path):
    with pytest.raises(DatasetError, match="dataset directory not found"):
        VOCDataset(tmp_path / "nope")
    root = _dataset(tmp_path / "d")
    with pytest.raises(DatasetError, match="missing split list .*train.txt"):
        VOCDataset(root, "train")
    (root / "JPEGImages" / "a.jpg").unlink()
    (root / "SegmentationClass" / "b.png").unlink()
    ds = VOCDataset(root)
    with pytest.raises(DatasetError, match="missing image file: .*a.jpg"):
        ds[0]
    with pytest.raises(DatasetError, match="missing label file: .*b.png"):
        ds[1]


def test_empty_split_list(tmp_path):
    root = _dataset(tmp_path / "d")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n")
    with pytest.raises(DatasetError, match="is empty"):
        VOCDataset(root)


def test_colour_label_is_rejected(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DatasetError, match="is a RGB image.*not colour renderings"):
        voc.read_label(tmp_path / "rgb.png")


def test_wrong_palette_is_rejected(tmp_path):
    img = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255, 10, 20, 30] + [0] * (253 * 3))
    img.save(tmp_path / "p.png")
    with pytest.raises(DatasetError, match="not the VOC colour map .*index 1 is \\(255, 255, 255\\), expected \\(128, 0, 0\\)"):
        voc.read_label(tmp_path / "p.png")


def test_corrupt_files(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read label file"):
        voc.read_label(tmp_path / "bad.png")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image file"):
        voc.read_image(tmp_path / "bad.jpg")


def test_image_label_size_mismatch(tmp_path):
    root = _dataset(tmp_path / "d")
    voc.write_label(root / "SegmentationClass" / "a.png", np.zeros((24, 31), np.uint8))
    with pytest.raises(DatasetError, match="sizes differ for a: image 32×24, label 31×24"):
        VOCDataset(root)[0]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        voc.write_label(tmp_path / "x.png", np.zeros((2, 2), np.int32))
    with pytest.raises(RuntimeError):
        with voc.atomic_output(tmp_path / "y.txt") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_labels_in_a_models_palette(tmp_path):
    """A model's palette (e.g. Cityscapes', recorded at export) is accepted where the VOC colour map is not."""
    from export.classes import named_set

    colours = np.zeros((256, 3), np.uint8)
    colours[:19] = named_set("cityscapes").palette
    img = Image.fromarray(np.array([[0, 13]], np.uint8), mode="P")
    img.putpalette(colours.tobytes())
    img.save(tmp_path / "city.png")
    assert voc.read_label(tmp_path / "city.png", colours).tolist() == [[0, 13]]
    with pytest.raises(DatasetError, match="not the VOC colour map .*index 0 is \\(128, 64, 128\\)"):
        voc.read_label(tmp_path / "city.png")
