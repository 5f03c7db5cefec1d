"""The user's folders: flat, class sub-folders, image + label-map pairs, and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from assemble.data import FieldSpec, make_dataset

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _solid(path, w, h, colour, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (w, h), colour).save(path)
    return path


def _noise(path, w, h, seed, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _stripes(path, colours, stripe_w, h):
    """Vertical stripes, one per colour, each ``stripe_w`` wide."""
    arr = np.concatenate([np.broadcast_to(np.array(c, np.uint8), (h, stripe_w, 3)) for c in colours], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
    return path


def _label(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
    return path


def test_flat_folder_odd_sizes_and_formats(tmp_path):
    _noise(tmp_path / "a.jpg", 50, 61, 1)
    _solid(tmp_path / "b.png", 37, 23, GREEN)
    _noise(tmp_path / "c.bmp", 64, 64, 2)
    _solid(tmp_path / "d.jpeg", 33, 17, RED)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = make_dataset(str(tmp_path), size=16)
    assert len(ds) == 4 and ds.fields == {"img": FieldSpec("image", (3, 16, 16))}
    assert ds.info["skipped_files"] == 1 and ds.info["size"] == [16, 16]
    b = ds.batch(range(4))                                               # sorted: a.jpg, b.png, c.bmp, d.jpeg
    assert b["img"].min() >= -1 and b["img"].max() <= 1
    # 64 px noise shrunk 4x: an antialiased filter averages it (std ~0.58 -> ~0.15); point sampling would not
    assert 0.05 < float(b["img"][2].std()) < 0.3
    assert torch.equal(b["img"][1], torch.tensor([-1.0, 1.0, -1.0])[:, None, None].expand(3, 16, 16))
    # JPEG keeps a flat colour to within a couple of levels
    torch.testing.assert_close(b["img"][3], torch.tensor([1.0, -1.0, -1.0])[:, None, None].expand(3, 16, 16),
                               atol=3 / 127.5, rtol=0)


def test_crop_takes_the_centre_and_stretch_keeps_everything(tmp_path):
    _stripes(tmp_path / "s.png", [RED, GREEN, BLUE], 20, 20)            # 60 wide, 20 high
    cropped = make_dataset(str(tmp_path), size=20)[0]["img"]             # centre 20x20: all green
    assert torch.equal(cropped, torch.tensor([-1.0, 1.0, -1.0])[:, None, None].expand(3, 20, 20))
    stretched = make_dataset(str(tmp_path), size=20, crop=False)[0]["img"]
    assert torch.equal(stretched[:, :, 0], torch.tensor([1.0, -1.0, -1.0])[:, None].expand(3, 20))   # red left
    assert torch.equal(stretched[:, :, -1], torch.tensor([-1.0, -1.0, 1.0])[:, None].expand(3, 20))  # blue right
    wide = make_dataset(str(tmp_path), size=(10, 30))[0]["img"]          # same aspect: nothing cropped
    assert wide.shape == (3, 10, 30)
    assert torch.equal(wide[:, 5, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.equal(wide[:, 5, 15], torch.tensor([-1.0, 1.0, -1.0]))
    assert torch.equal(wide[:, 5, 29], torch.tensor([-1.0, -1.0, 1.0]))


def test_size_none_keeps_a_common_size_and_rejects_mixed(tmp_path):
    _noise(tmp_path / "a.png", 12, 9, 0)
    _noise(tmp_path / "b.png", 12, 9, 1)
    ds = make_dataset(str(tmp_path))
    assert ds.fields["img"].shape == (3, 9, 12)
    raw = np.asarray(Image.open(tmp_path / "a.png")).transpose(2, 0, 1)
    torch.testing.assert_close(ds[0]["img"], torch.tensor(raw / 127.5 - 1, dtype=torch.float32))  # untouched
    _noise(tmp_path / "c.png", 20, 9, 2)
    with pytest.raises(ValueError, match=r"different sizes.*data.size"):
        make_dataset(str(tmp_path))


def test_grayscale_and_channels(tmp_path):
    _solid(tmp_path / "grey.png", 8, 8, 51, mode="L")
    _solid(tmp_path / "red.png", 8, 8, RED)
    rgb = make_dataset(str(tmp_path), size=8).batch([0, 1])["img"]
    assert rgb.shape == (2, 3, 8, 8)
    torch.testing.assert_close(rgb[0], torch.full((3, 8, 8), 51 / 127.5 - 1))   # grey copied to R, G, B
    grey = make_dataset(str(tmp_path), size=8, channels=1)
    assert grey.fields["img"] == FieldSpec("image", (1, 8, 8))
    g = grey.batch([0, 1])["img"]
    torch.testing.assert_close(g[0], torch.full((1, 8, 8), 51 / 127.5 - 1))
    torch.testing.assert_close(g[1], torch.full((1, 8, 8), 76 / 127.5 - 1))      # luma of red: 299/1000 * 255


def test_sixteen_bit_grey_is_scaled(tmp_path):
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    img = make_dataset(str(tmp_path), channels=1)[0]["img"]
    assert torch.equal(img, torch.ones(1, 6, 6))


def test_class_subfolders(tmp_path):
    for i in range(2):
        _solid(tmp_path / "cats" / f"{i}.png", 10 + i, 12, RED)
    for i in range(3):
        _solid(tmp_path / "dogs" / "nested" / f"{i}.png", 14, 9 + i, BLUE)
    (tmp_path / ".cache").mkdir()
    _solid(tmp_path / ".cache" / "x.png", 5, 5, GREEN)                   # hidden: ignored
    ds = make_dataset(str(tmp_path), size=8)
    assert ds.fields == {"img": FieldSpec("image", (3, 8, 8)), "label": FieldSpec("class", (), 2)}
    assert ds.info["classes"] == ["cats", "dogs"] and len(ds) == 5
    b = ds.batch(range(5))
    assert b["label"].tolist() == [0, 0, 1, 1, 1]
    assert torch.equal(b["img"][:, 0, 0, 0], torch.tensor([1.0, 1, -1, -1, -1]))   # red cats, blue dogs
    assert torch.equal(b["img"][:, 2, 0, 0], torch.tensor([-1.0, -1, 1, 1, 1]))


def test_folder_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        make_dataset(str(tmp_path))
    _solid(tmp_path / "cats" / "0.png", 8, 8, RED)
    (tmp_path / "dogs").mkdir()
    with pytest.raises(ValueError, match=r"class folder.*dogs.*no images"):
        make_dataset(str(tmp_path), size=8)
    _solid(tmp_path / "dogs" / "0.png", 8, 8, RED)
    _solid(tmp_path / "loose.png", 8, 8, RED)
    with pytest.raises(ValueError, match=r"mixes images at its top level.*loose\.png"):
        make_dataset(str(tmp_path), size=8)
    with pytest.raises(ValueError, match="not a folder"):
        make_dataset(str(tmp_path / "loose.png"))


def test_unreadable_file_is_named(tmp_path):
    _noise(tmp_path / "good.png", 8, 8, 0)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(ValueError, match=r"broken\.png"):
        make_dataset(str(tmp_path), size=8)
    with pytest.raises(ValueError, match=r"broken\.png"):
        make_dataset(str(tmp_path))                                       # also while reading sizes


@pytest.mark.parametrize("opts,match", [({"size": 0}, "size"), ({"size": (8, -1)}, "size"),
                                        ({"channels": 2}, "channels"), ({"crop": "yes"}, "crop"),
                                        ({"n_classes": 3}, "n_classes"), ({"flip": True}, "does not take")])
def test_folder_bad_options(tmp_path, opts, match):
    _noise(tmp_path / "a.png", 8, 8, 0)
    with pytest.raises(ValueError, match=match):
        make_dataset(str(tmp_path), **opts)


def _pair(root, name, w, h, label):
    _noise(root / "images" / f"{name}.png", w, h, hash(name) % 100)
    _label(root / "labels" / f"{name}.png", label)


def test_pairs_load_aligned_label_maps(tmp_path):
    lab = np.zeros((20, 40), np.uint8)
    lab[:, :20], lab[:, 20:], lab[:5, :] = 1, 2, 0                      # top band 0, left 1, right 2
    _pair(tmp_path, "a", 40, 20, lab)
    _pair(tmp_path, "b", 40, 20, np.ones((20, 40)))
    ds = make_dataset(str(tmp_path), size=(10, 20), crop=False)
    assert ds.fields == {"img": FieldSpec("image", (3, 10, 20)), "seg": FieldSpec("label_map", (3, 10, 20), 3)}
    seg = ds[0]["seg"]
    assert torch.equal(seg.sum(0), torch.ones(10, 20))
    classes = seg.argmax(0)
    assert (classes[:2] == 0).all() and (classes[3:, :10] == 1).all() and (classes[3:, 10:] == 2).all()
    assert (ds[1]["seg"].argmax(0) == 1).all()
    # crop=True on a 2:1 image to a square keeps the middle half of the columns: classes 1 and 2 both survive
    sq = make_dataset(str(tmp_path), size=10)[0]["seg"].argmax(0)
    assert (sq[5:, :5] == 1).all() and (sq[5:, 5:] == 2).all()
    wide = make_dataset(str(tmp_path), size=(10, 20), n_classes=5)
    assert wide.fields["seg"] == FieldSpec("label_map", (5, 10, 20), 5)


def test_pairs_errors(tmp_path):
    _pair(tmp_path, "a", 8, 8, np.full((8, 8), 4))
    with pytest.raises(ValueError, match=r"a.png holds class 4 but n_classes is 2; set data.n_classes: 5"):
        make_dataset(str(tmp_path), n_classes=2)
    _noise(tmp_path / "images" / "b.png", 8, 8, 1)
    _label(tmp_path / "labels" / "c.png", np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"2 file\(s\) without a partner: images/b.png, labels/c.png"):
        make_dataset(str(tmp_path))


def test_pairs_label_must_be_single_channel_and_same_size(tmp_path):
    _noise(tmp_path / "images" / "a.png", 8, 8, 0)
    _noise(tmp_path / "labels" / "a.png", 8, 8, 1)                       # RGB label map
    with pytest.raises(ValueError, match="single-channel"):
        make_dataset(str(tmp_path))
    _label(tmp_path / "labels" / "a.png", np.zeros((6, 8)))
    with pytest.raises(ValueError, match="same size"):
        make_dataset(str(tmp_path))
    _label(tmp_path / "labels" / "a.jpg", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="lossless"):
        make_dataset(str(tmp_path))


def test_pairs_with_palette_and_sixteen_bit_labels(tmp_path):
    _noise(tmp_path / "images" / "a.png", 6, 4, 0)
    _noise(tmp_path / "images" / "b.png", 6, 4, 1)
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.full((4, 6), 300, dtype=np.uint16)).save(tmp_path / "labels" / "a.png")
    palette = Image.fromarray(np.full((4, 6), 7, dtype=np.uint8)).convert("P")   # indices, not colours
    palette.putdata([7] * 24)
    palette.save(tmp_path / "labels" / "b.png")
    ds = make_dataset(str(tmp_path))
    assert ds.fields["seg"].n_classes == 301
    assert bool((ds[0]["seg"].argmax(0) == 300).all()) and bool((ds[1]["seg"].argmax(0) == 7).all())
