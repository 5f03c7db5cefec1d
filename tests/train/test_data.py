"""Built-in datasets, make_dataset, GanDataset and bind (folders: test_data_folder.py)."""

import json
import math
import socket

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import assemble
from assemble.data import FieldSpec, GanDataset, bind, list_datasets, make_dataset
from assemble.data import digits as digits_module
from assemble.data.digits import digit_images
from assemble.data.shapes import SHAPE_TYPES, draw_scene
from assemble.inputs import InputSpec

# ---------------------------------------------------------------------------------------------- toy 2-D


@pytest.mark.parametrize("name", ["ring8", "grid25", "swiss_roll"])
def test_toy_fields_and_length(name):
    ds = make_dataset(name, n=500)
    assert ds.fields == {"x": FieldSpec("vector", (2,))}
    assert len(ds) == 500 and ds.name == name
    x = ds[3]["x"]
    assert x.shape == (2,) and x.dtype == torch.float32


def test_ring8_centres_are_eight_points_on_the_circle():
    ds = make_dataset("ring8", n=10)
    c = torch.tensor(ds.info["centers"])
    assert c.shape == (8, 2) and ds.info["std"] == 0.02
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0, dtype=c.dtype))
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles.sort().values, torch.arange(8, dtype=c.dtype) * math.pi / 4)


def test_ring8_radius_and_std_options():
    ds = make_dataset("ring8", n=20_000, radius=1.0, std=0.01)
    assert ds.info["std"] == 0.01
    r = ds.batch(range(len(ds)))["x"].norm(dim=1)
    assert abs(float(r.mean()) - 1.0) < 0.002 and float((r - 1).abs().max()) < 0.06


def test_grid25_centres_are_the_grid():
    c = {tuple(p) for p in make_dataset("grid25", n=10).info["centers"]}
    assert c == {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_toy_statistics_match_the_mixture(name):
    ds = make_dataset(name, n=50_000, seed=3)
    x = ds.batch(range(len(ds)))["x"].double()                         # (N, 2)
    c = torch.tensor(ds.info["centers"], dtype=torch.float64)          # (K, 2)
    std, k = ds.info["std"], len(c)
    nearest = torch.cdist(x, c).argmin(dim=1)
    assert float((x - c[nearest]).norm(dim=1).max()) < 6 * std         # every point belongs to one mode
    counts = torch.bincount(nearest, minlength=k).double()
    p = 1 / k
    assert float((counts / len(x) - p).abs().max()) < 5 * math.sqrt(p * (1 - p) / len(x))
    for m in range(k):
        pts = x[nearest == m]
        mean_err = (pts.mean(0) - c[m]).abs().max()
        assert float(mean_err) < 5 * std / math.sqrt(len(pts))
        assert abs(float(pts.std(0).mean()) / std - 1) < 0.06


def test_swiss_roll_is_sklearns_projected_and_scaled():
    from sklearn.datasets import make_swiss_roll

    ds = make_dataset("swiss_roll", n=2000, seed=5)
    ref = make_swiss_roll(n_samples=2000, noise=0.25, random_state=5)[0][:, [0, 2]] / 7.5
    torch.testing.assert_close(ds.batch(range(2000))["x"], torch.tensor(ref, dtype=torch.float32))
    assert "centers" not in ds.info


@pytest.mark.parametrize("name,opts", [("ring8", {"n": 300}), ("grid25", {"n": 300}), ("swiss_roll", {"n": 300}),
                                       ("stacked_digits", {"n": 1000, "size": 8}), ("shapes", {"n": 8, "size": 16})])
def test_seed_determinism(name, opts):
    a, b, c = (make_dataset(name, seed=s, **opts) for s in (1, 1, 2))
    idx = range(len(a))
    for key in a.fields:
        assert torch.equal(a.batch(idx)[key], b.batch(idx)[key]), key
    assert any(not torch.equal(a.batch(idx)[k], c.batch(idx)[k]) for k in a.fields)


# ---------------------------------------------------------------------------------------------- digits


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_digits_fields_and_range(size):
    ds = make_dataset("digits", size=size)
    assert len(ds) == 1797
    assert ds.fields == {"img": FieldSpec("image", (1, size, size)), "label": FieldSpec("class", (), 10)}
    b = ds.batch(range(len(ds)))
    assert b["img"].shape == (1797, 1, size, size) and b["label"].dtype == torch.int64
    assert float(b["img"].min()) == -1.0 and 0.99 <= float(b["img"].max()) <= 1.0


def test_digits_match_sklearn_pixels_and_labels():
    from sklearn.datasets import load_digits

    ref = load_digits()
    b = make_dataset("digits", size=8).batch(range(1797))
    torch.testing.assert_close(b["img"][:, 0], torch.tensor(ref.images / 8 - 1, dtype=torch.float32))
    assert torch.equal(b["label"], torch.tensor(ref.target))
    # 16 px is bilinear x2 (half-pixel centres): out[2i] = 3/4 src[i] + 1/4 src[i-1], out[2i+1] = 3/4 src[i]
    # + 1/4 src[i+1], edges clamped; separable, so out = U @ src @ U.T
    u = np.zeros((16, 8))
    for i in range(8):
        u[2 * i, i] += 0.75
        u[2 * i, max(i - 1, 0)] += 0.25
        u[2 * i + 1, i] += 0.75
        u[2 * i + 1, min(i + 1, 7)] += 0.25
    expected = torch.tensor(u @ (ref.images / 8 - 1) @ u.T, dtype=torch.float32)
    big = make_dataset("digits", size=16).batch(range(1797))["img"][:, 0]
    torch.testing.assert_close(big, expected)


def test_digits_load_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    digits_module._sklearn_digits.cache_clear()
    images, labels = digit_images(8)
    assert images.shape == (1797, 1, 8, 8) and len(labels) == 1797


@pytest.mark.parametrize("size", [12, (16, 32), 0, "16", 128])
def test_digits_bad_size(size):
    with pytest.raises(ValueError, match="8, 16, 32, 64"):
        make_dataset("digits", size=size)


def test_stacked_digits_labels_decode_to_their_channels():
    ds = make_dataset("stacked_digits", size=8, seed=4)
    assert len(ds) == 25_000
    assert ds.fields == {"img": FieldSpec("image", (3, 8, 8)), "label": FieldSpec("class", (), 1000)}
    labels = ds.batch(range(len(ds)))["label"]
    assert torch.unique(labels).numel() == 1000                          # every class present
    table, table_labels = digit_images(8)                                # (1797, 1, 8, 8)
    b = ds.batch(range(2000))
    channels = b["img"].reshape(2000 * 3, 64)                            # sample-major, then R, G, B
    digits = torch.stack([b["label"] // 100, b["label"] // 10 % 10, b["label"] % 10], dim=1).reshape(-1)
    same = torch.cdist(channels.double(), table.reshape(1797, 64).double()) == 0   # (6000, 1797) identical
    assert bool(same.any(dim=1).all())                                   # each channel is a shipped digit
    assert not bool((same & (table_labels[None, :] != digits[:, None])).any())   # ... of the decoded class


def test_stacked_digits_draws_different_images_of_a_class():
    ds = make_dataset("stacked_digits", size=8, n=3000)
    b = ds.batch(range(len(ds)))
    red_zeros = b["img"][b["label"] // 100 == 0][:, 0]                  # red channels showing a 0
    assert torch.unique(red_zeros.flatten(1), dim=0).shape[0] > 20


def test_stacked_digits_needs_all_classes():
    with pytest.raises(ValueError, match="1000"):
        make_dataset("stacked_digits", n=999)


# ---------------------------------------------------------------------------------------------- shapes


def test_shapes_fields_and_one_hot():
    ds = make_dataset("shapes", n=40, seed=1)
    assert ds.fields == {"img": FieldSpec("image", (3, 64, 64)),
                         "seg": FieldSpec("label_map", (4, 64, 64), 4), "label": FieldSpec("class", (), 3)}
    b = ds.batch(range(40))
    assert b["img"].min() >= -1 and b["img"].max() <= 1
    assert torch.equal(b["seg"].sum(1), torch.ones(40, 64, 64))         # one-hot everywhere
    assert set(b["seg"].unique().tolist()) == {0.0, 1.0}


def test_shapes_non_square_and_more_classes():
    ds = make_dataset("shapes", size=(24, 40), n=60, n_classes=7)
    s = ds[0]
    assert s["img"].shape == (3, 24, 40) and s["seg"].shape == (7, 24, 40)
    assert ds.fields["label"].n_classes == 6
    present = ds.batch(range(60))["seg"].sum(dim=(0, 2, 3)) > 0
    assert bool(present.all())                                           # every shape type drawn somewhere


def test_shapes_seg_agrees_with_image_pixels():
    rng = np.random.default_rng(0)
    for _ in range(100):
        scene = draw_scene(rng, 20, 28, n_types=len(SHAPE_TYPES), max_shapes=5)
        owned = np.zeros((20, 28), dtype=int)
        for shape in scene.shapes:
            vis = shape.visible
            owned += vis
            assert (scene.image[:, vis] == np.array(shape.colour)[:, None]).all()   # its pixels have its colour
            assert (scene.seg[vis] == shape.type + 1).all()
        assert (owned <= 1).all()                                        # one owner per pixel
        bg = owned == 0
        assert (scene.seg[bg] == 0).all() and (scene.image[:, bg] == np.array(scene.background)[:, None]).all()
        areas = [s.visible.sum() for s in scene.shapes]
        assert scene.label == scene.shapes[int(np.argmax(areas))].type


def test_shapes_dataset_background_is_recoverable_and_label_is_drawn():
    ds = make_dataset("shapes", n=30, size=32, seed=2)
    b = ds.batch(range(30))
    for img, seg, label in zip(b["img"], b["seg"].argmax(1), b["label"]):
        bg_colours = img[:, seg == 0].T.unique(dim=0)
        if len(bg_colours):
            assert len(bg_colours) == 1                                  # a flat background
            shape_px = img[:, seg > 0].T
            assert not bool((shape_px == bg_colours[0]).all(dim=1).any())  # no shape pixel has its colour
        assert bool((seg == label + 1).any())                            # the labelled type is visible


@pytest.mark.parametrize("opts", [{"size": 4}, {"size": (64, 6)}, {"n_classes": 1}, {"n_classes": 9}, {"n": 0}])
def test_shapes_bad_options(opts):
    with pytest.raises(ValueError, match="shapes"):
        make_dataset("shapes", **opts)


# ---------------------------------------------------------------------------------------------- make_dataset


def test_list_datasets():
    assert list_datasets() == sorted(["ring8", "grid25", "swiss_roll", "digits", "stacked_digits", "shapes"])


@pytest.mark.parametrize("name,opts", [("ring8", {}), ("grid25", {"n": 10}), ("swiss_roll", {"n": 10}),
                                       ("digits", {"size": 8}), ("stacked_digits", {"size": 8, "n": 1000}),
                                       ("shapes", {"n": 2, "size": 8})])
def test_info_is_json_and_records_the_source(name, opts):
    ds = make_dataset(name, seed=7, **opts)
    info = json.loads(json.dumps(ds.info))
    assert info["source"] and info["seed"] == 7 and info["n_samples"] == len(ds)
    if not opts:
        assert len(ds) == 100_000                                        # the default n


@pytest.mark.parametrize("name,closest", [("ring", "ring8"), ("digit", "digits"), ("swissroll", "swiss_roll")])
def test_unknown_name_names_the_closest(name, closest):
    with pytest.raises(ValueError, match=f"unknown dataset '{name}'.*{closest}"):
        make_dataset(name)


def test_make_dataset_errors():
    with pytest.raises(ValueError, match="does not exist"):
        make_dataset("./no/such/folder")
    with pytest.raises(ValueError, match=r"does not take option\(s\) radius; it takes: n, std"):
        make_dataset("grid25", radius=3)
    with pytest.raises(ValueError, match="no image size"):
        make_dataset("ring8", size=16)
    with pytest.raises(ValueError, match="seed"):
        make_dataset("ring8", seed=-1)
    with pytest.raises(ValueError, match="n"):
        make_dataset("ring8", n=0)


# ---------------------------------------------------------------------------------------------- GanDataset


def test_getitem_batch_and_dataloader_agree():
    ds = make_dataset("shapes", n=6, size=16)
    single = [ds[i] for i in range(6)]
    b = ds.batch([0, 1, 2, 3, 4, 5])
    for key in ds.fields:
        assert torch.equal(torch.stack([s[key] for s in single]), b[key])
    loaded = next(iter(DataLoader(ds, batch_size=6)))
    assert all(torch.equal(loaded[k], b[k]) for k in ds.fields)
    assert torch.equal(ds[-1]["img"], single[5]["img"])

    with pytest.raises(IndexError, match="6 samples"):
        ds[6]
    with pytest.raises(IndexError):
        ds.batch([0, 7])


@pytest.mark.parametrize("name,key", [("digits", "img"), ("ring8", "x"), ("stacked_digits", "img")])
def test_editing_a_sample_leaves_the_data_alone(name, key):
    ds = make_dataset(name, size=8) if name != "ring8" else make_dataset(name, n=5)
    sample = ds[0][key]
    before = sample.clone()
    sample.fill_(0.5)
    assert torch.equal(ds[0][key], before)


def test_gandataset_checks_its_columns():
    spec = {"img": FieldSpec("image", (1, 4, 4))}
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        GanDataset("t", spec, {"img": torch.full((2, 1, 4, 4), 2.0)})
    with pytest.raises(ValueError, match="shape"):
        GanDataset("t", spec, {"img": torch.zeros(2, 3, 4, 4)})
    with pytest.raises(ValueError, match=r"0\.\.2"):
        GanDataset("t", {"y": FieldSpec("class", (), 3)}, {"y": torch.tensor([0, 3])})
    with pytest.raises(ValueError, match="unknown field kind"):
        FieldSpec("picture", (1, 4, 4))
    with pytest.raises(ValueError, match="n_classes"):
        FieldSpec("label_map", (3, 4, 4), 4)


# ---------------------------------------------------------------------------------------------- bind


def _inp(name, kind, shape=(), n_classes=0, optional=False):
    return InputSpec(name, kind, tuple(shape), n_classes=n_classes, optional=optional)


DIGITS16 = {"img": FieldSpec("image", (1, 16, 16)), "label": FieldSpec("class", (), 10)}


def test_bind_by_name_kind_and_explicit():
    inputs = {"z": _inp("z", "latent", (8,)), "img": _inp("img", "image", (1, 16, 16)),
              "y": _inp("y", "class", n_classes=10)}
    assert bind(DIGITS16, inputs, None) == {"img": "img", "y": "label"}          # z is sampled, not bound
    two = {"img": FieldSpec("image", (3, 8, 8)), "edges": FieldSpec("image", (3, 8, 8))}
    assert bind(two, {"img": _inp("img", "image", (3, 8, 8))}, None) == {"img": "img"}   # same name wins
    assert bind(two, {"img": _inp("img", "image", (3, 8, 8))}, {"img": "edges"}) == {"img": "edges"}
    with pytest.raises(ValueError, match=r"'src' .* any of the fields img, edges; .*data.bind: \{src: img\}"):
        bind(two, {"src": _inp("src", "image", (3, 8, 8))}, None)
    vec = {"emb": FieldSpec("vector", (128,))}
    assert bind(vec, {"t": _inp("t", "text_embedding", (128,))}, None) == {"t": "emb"}


def test_bind_optional_input_may_stay_unbound():
    inputs = {"img": _inp("img", "image", (1, 16, 16)), "c": _inp("c", "label_map", (4, 16, 16), optional=True)}
    assert bind(DIGITS16, inputs, None) == {"img": "img"}


def test_bind_shape_mismatch_names_everything_and_the_fix():
    with pytest.raises(ValueError) as err:
        bind(DIGITS16, {"img": _inp("img", "image", (3, 32, 32))}, None)
    msg = str(err.value)
    for part in ("'img'", "image(3, 32, 32)", "image(1, 16, 16)", "data.size: 32", "data.channels: 3"):
        assert part in msg
    with pytest.raises(ValueError, match=r"data.size: \[24, 40\]"):
        bind({"img": FieldSpec("image", (3, 64, 64))}, {"img": _inp("img", "image", (3, 24, 40))}, None)


def test_bind_failures_each_explained():
    seg4 = {"seg": FieldSpec("label_map", (4, 16, 16), 4)}
    with pytest.raises(ValueError, match=r"label_map\(35, 16, 16\).*label_map\(4, 16, 16\).*data.n_classes: 35"):
        bind(seg4, {"seg": _inp("seg", "label_map", (35, 16, 16))}, None)
    with pytest.raises(ValueError, match=r"'y' expects class\(1000\) .* 'label' is class\(10\).*1000 classes"):
        bind(DIGITS16, {"y": _inp("y", "class", n_classes=1000)}, None)
    with pytest.raises(ValueError, match=r"'seg' expects label_map.*no label_map field.*img: image\(1, 16, 16\)"):
        bind(DIGITS16, {"seg": _inp("seg", "label_map", (4, 16, 16))}, None)
    with pytest.raises(ValueError, match="different kinds"):
        bind(DIGITS16, {"img": _inp("img", "image", (1, 16, 16))}, {"img": "label"})
    with pytest.raises(ValueError, match="field 'edges', which the data lacks"):
        bind(DIGITS16, {"img": _inp("img", "image", (1, 16, 16))}, {"img": "edges"})
    with pytest.raises(ValueError, match="names input 'x'"):
        bind(DIGITS16, {"img": _inp("img", "image", (1, 16, 16))}, {"x": "img"})
    with pytest.raises(ValueError) as err:                               # all problems at once
        bind(DIGITS16, {"img": _inp("img", "image", (1, 8, 8)), "y": _inp("y", "class", n_classes=3)}, None)
    assert "'img'" in str(err.value) and "'y'" in str(err.value)


def test_bind_to_recipe_inputs():
    _, specs, _ = assemble.plan("wgan_gp_toy")
    grid = make_dataset("grid25", n=10)
    d_inputs = specs["discriminator"].inputs
    assert bind(grid.fields, d_inputs, None) == {"x": "x"}
    assert bind(grid.fields, specs["generator"].inputs, None) == {}     # G only takes a latent
    digits16 = make_dataset("digits", size=16)
    with pytest.raises(ValueError, match="'x' expects vector"):
        bind(digits16.fields, d_inputs, None)
