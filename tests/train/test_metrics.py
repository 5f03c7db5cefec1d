"""Metrics: VEEGAN/PacGAN mode statistics on hand-built point sets, and the digit classifier's reports."""

import math

import pytest
import torch
from safetensors.torch import save_file

from assemble.metrics import DigitClassifier, digit_classifier, digits_report, mode_stats, stacked_report
from assemble.metrics import digits as digits_mod
from assemble.metrics.classifier import (
    TrainConfig,
    config_hash,
    digits_split,
    evaluate_accuracy,
    train_digit_classifier,
)
from assemble.metrics.digits import _default_size
from blocks.shapes import ShapeError

# ---------------------------------------------------------------------------------------------- toy modes

RING = torch.tensor([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])
GRID = torch.tensor([[x, y] for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)])


def test_mode_stats_all_modes_covered():
    offsets = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.0, -0.03]])  # all within 3 std = 0.06
    samples = (RING[:, None, :] + offsets[None]).reshape(-1, 2)  # 3 per mode
    stats = mode_stats(samples, RING, std=0.02)
    assert stats == {"modes_covered": 8, "n_modes": 8, "high_quality_fraction": 1.0, "per_mode_counts": [3] * 8}


def test_mode_stats_some_modes():
    samples = torch.cat([GRID[0].expand(4, 2), GRID[7].expand(2, 2), GRID[24].expand(1, 2)]) + 0.1
    stats = mode_stats(samples, GRID, std=0.25)
    expected = [0] * 25
    expected[0], expected[7], expected[24] = 4, 2, 1
    assert stats["per_mode_counts"] == expected
    assert stats["modes_covered"] == 3
    assert stats["n_modes"] == 25
    assert stats["high_quality_fraction"] == 1.0


def test_mode_stats_off_mode_samples():
    # std 0.25: the threshold 3 std is 0.75, exactly representable, so the boundary case is exact.
    samples = torch.tensor([
        [0.0, 0.0],      # on mode (0, 0): high quality
        [0.5, 0.0],      # 2 std from (0, 0): high quality
        [0.75, 0.0],     # exactly 3 std: not "within" (PacGAN's code uses a strict <)
        [1.0, 1.0],      # between modes, sqrt(2) from four of them: off-mode
        [2.0, 3.2],      # 4.8 std from (2, 4), its nearest: off-mode
        [4.0, 4.7],      # 2.8 std from (4, 4): high quality
        [10.0, 10.0],    # far outside the grid
    ])
    stats = mode_stats(samples, GRID, std=0.25)
    assert stats["high_quality_fraction"] == pytest.approx(3 / 7)
    assert stats["modes_covered"] == 2
    counts = stats["per_mode_counts"]
    assert counts[12] == 2 and counts[24] == 1 and sum(counts) == 3  # (0, 0) is index 12, (4, 4) index 24


def test_mode_stats_rule_parameters():
    samples = torch.tensor([[0.0, 0.0], [0.05, 0.0], [0.0, 0.05], [2.0, 2.0], [0.875, 0.0]])
    base = mode_stats(samples, GRID, std=0.25)
    assert base["modes_covered"] == 2 and base["high_quality_fraction"] == pytest.approx(4 / 5)
    # 0.875 is 3.5 std from (0, 0): high quality once the threshold is 4 std.
    wide = mode_stats(samples, GRID, std=0.25, threshold=4.0)
    assert wide["per_mode_counts"][12] == 4 and wide["high_quality_fraction"] == 1.0
    # A mode needs two high-quality samples: (2, 2) with one is no longer covered.
    strict = mode_stats(samples, GRID, std=0.25, min_count=2)
    assert strict["modes_covered"] == 1 and strict["per_mode_counts"] == base["per_mode_counts"]


def test_mode_stats_assigns_to_nearest_centre():
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    stats = mode_stats(torch.tensor([[0.4, 0.0], [0.6, 0.0]]), centers, std=1.0)
    assert stats["per_mode_counts"] == [1, 1]


def test_mode_stats_errors():
    with pytest.raises(ShapeError, match="centers"):
        mode_stats(torch.zeros(4, 2), torch.zeros(3, 3), std=1.0)
    with pytest.raises(ShapeError, match="samples"):
        mode_stats(torch.zeros(4), RING, std=1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        mode_stats(torch.zeros(4, 2), RING, std=0.0)
    with pytest.raises(ValueError, match="at least one sample"):
        mode_stats(torch.zeros(0, 2), RING, std=1.0)
    with pytest.raises(ValueError, match="min_count"):
        mode_stats(torch.zeros(4, 2), RING, std=1.0, min_count=0)


# ------------------------------------------------------------------------------------------ digit classifier


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ganforge_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANFORGE_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def clf16(cache):
    return digit_classifier(16)  # trains once (~15 s on two busy cores) into the temporary cache


@pytest.fixture(scope="module")
def held_out():
    return digits_split(16)["test"]


@pytest.fixture(scope="module")
def confident_digits(clf16, held_out):
    """Held-out digits the classifier gets right with confidence >= 0.9, grouped by class."""
    x, y = held_out
    with torch.no_grad():
        conf, pred = clf16(x).softmax(1).max(1)
    keep = (pred == y) & (conf >= 0.9)
    return [x[keep & (y == d)] for d in range(10)]


def test_classifier_reaches_target_at_16px(clf16, held_out, cache):
    assert isinstance(clf16, DigitClassifier) and clf16.size == 16
    assert clf16.accuracy >= 0.97
    assert clf16.accuracy == evaluate_accuracy(clf16, *held_out)  # the reported number is the real one
    files = list(cache.glob("*.safetensors"))
    assert len(files) == 1 and "16px" in files[0].name


def test_second_call_loads_from_cache(clf16, held_out, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the cached weights should have been loaded, not retrained")

    monkeypatch.setattr(digits_mod, "train_digit_classifier", no_training)
    again = digit_classifier(16)
    assert again is not clf16 and again.accuracy == clf16.accuracy
    x, _ = held_out
    with torch.no_grad():
        assert torch.equal(again(x), clf16(x))


def test_weights_from_a_user_path(clf16, cache, held_out, tmp_path):
    path = next(cache.glob("*.safetensors"))
    loaded = digit_classifier(16, weights=str(path))
    with torch.no_grad():
        assert torch.equal(loaded(held_out[0]), clf16(held_out[0]))
    with pytest.raises(ValueError, match="trained at 16 px"):
        digit_classifier(8, weights=str(path))
    with pytest.raises(FileNotFoundError, match="no file"):
        digit_classifier(16, weights=str(tmp_path / "missing.safetensors"))
    # Without metadata the size is checked by the tensors' shapes.
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in DigitClassifier(8).state_dict().items()}, str(bare))
    with pytest.raises(ValueError, match="does not fit a 16 px"):
        digit_classifier(16, weights=str(bare))
    # Weights without metadata (trained elsewhere) get their accuracy measured on the held-out split.
    bare16 = tmp_path / "bare16.safetensors"
    save_file({k: v.contiguous() for k, v in clf16.state_dict().items()}, str(bare16))
    assert digit_classifier(16, weights=str(bare16)).accuracy == clf16.accuracy
    # A pickle is refused, never unpickled.
    pickled = tmp_path / "weights.pt"
    torch.save(clf16.state_dict(), pickled)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        digit_classifier(16, weights=str(pickled))


def test_unreadable_cache_file_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    calls = []

    def quick(size, config):
        calls.append(size)
        return train_digit_classifier(size, TrainConfig(epochs=1))

    monkeypatch.setattr(digits_mod, "train_digit_classifier", quick)
    path = tmp_path / f"digits_classifier_8px_{config_hash(8, TrainConfig())}.safetensors"
    path.write_bytes(b"not a safetensors file")
    first = digit_classifier(8)
    assert calls == [8] and first.size == 8
    second = digit_classifier(8)  # the rewritten file loads
    assert calls == [8] and second.accuracy == first.accuracy
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left


def test_training_is_deterministic_and_leaves_global_rng_alone():
    quick = TrainConfig(epochs=1)
    state = torch.random.get_rng_state()
    a, b = train_digit_classifier(8, quick), train_digit_classifier(8, quick)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_bad_sizes():
    with pytest.raises(ValueError, match="one of"):
        digit_classifier(24)
    assert [_default_size(s) for s in (4, 8, 12, 16, 28, 32, 64)] == [8, 8, 16, 16, 32, 32, 32]


# ------------------------------------------------------------------------------------------------- reports


def test_digits_report_on_real_digits(clf16, held_out):
    x, y = held_out
    report = digits_report(x)  # default classifier: loaded from the cache
    assert report["confident_fraction"] > 0.9
    assert report["modes"] == 10
    assert report["classifier_accuracy"] == clf16.accuracy
    true_counts = torch.bincount(y, minlength=10).tolist()  # 35-37 per class
    assert sum(report["histogram"]) == len(y)
    assert all(abs(h - t) <= 3 for h, t in zip(report["histogram"], true_counts))


def test_digits_report_on_noise(clf16, held_out):
    noise = torch.rand(500, 1, 16, 16) * 2 - 1
    report = digits_report(noise, classifier=clf16)
    real = digits_report(held_out[0], classifier=clf16)
    assert report["confident_fraction"] < 0.1 < real["confident_fraction"] - 0.8
    assert sum(report["histogram"]) == 500


def test_digits_report_counts_only_confident_classes(clf16, confident_digits):
    x = torch.cat([confident_digits[3][:5], confident_digits[7][:5]])
    report = digits_report(x, classifier=clf16)
    assert report["modes"] == 2 and report["confident_fraction"] == 1.0
    assert report["histogram"] == [0, 0, 0, 5, 0, 0, 0, 5, 0, 0]
    # Unconfident noise images enter the histogram but not the modes.
    noisy = digits_report(torch.cat([x, torch.rand(100, 1, 16, 16) * 2 - 1]), classifier=clf16)
    assert noisy["modes"] == 2 and noisy["confident_fraction"] == pytest.approx(10 / 110)
    assert sum(noisy["histogram"]) == 110 and len([h for h in noisy["histogram"] if h]) > 2


def test_digits_report_resizes_other_sizes(clf16, held_out):
    x = torch.nn.functional.interpolate(held_out[0], size=(32, 32), mode="bilinear", align_corners=False)
    assert digits_report(x, classifier=clf16)["confident_fraction"] > 0.9


def _stack(confident_digits, modes, repeats, seed=0):
    """Stacked images for the given 3-digit modes: channel c shows digit (mode // 10**(2-c)) % 10."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in modes:
        for _ in range(repeats):
            chans = []
            for d in (m // 100, m // 10 % 10, m % 10):
                pool = confident_digits[d]
                chans.append(pool[torch.randint(len(pool), (1,), generator=g)][0])  # (1, S, S)
            out.append(torch.cat(chans))  # (3, S, S)
    return torch.stack(out)


def test_stacked_report_counts_modes(clf16, confident_digits):
    modes = torch.randperm(1000, generator=torch.Generator().manual_seed(1))[:50].tolist()
    report = stacked_report(_stack(confident_digits, modes, repeats=4), classifier=clf16)
    assert report["modes"] == 50
    assert report["confident_fraction"] == 1.0
    assert report["kl_to_uniform"] == pytest.approx(math.log(1000 / 50))  # p uniform over 50 of 1000 modes


def test_stacked_report_all_modes(clf16, confident_digits):
    report = stacked_report(_stack(confident_digits, range(1000), repeats=1), classifier=clf16)
    assert report["modes"] == 1000
    assert report["kl_to_uniform"] == pytest.approx(0.0, abs=1e-9)


def test_stacked_report_needs_all_channels_confident(clf16, confident_digits):
    clean = _stack(confident_digits, list(range(100, 120)), repeats=2)  # 20 modes, 40 samples
    broken = _stack(confident_digits, list(range(500, 510)), repeats=1)
    broken[:, 1] = torch.rand(10, 16, 16) * 2 - 1  # middle digit replaced by noise
    report = stacked_report(torch.cat([clean, broken]), classifier=clf16)
    assert report["modes"] == 20
    assert report["confident_fraction"] == pytest.approx(40 / 50)
    # The KL is over every sample's argmax mode, confident or not (PacGAN's code).
    with torch.no_grad():
        middle = clf16(broken[:, 1:2]).argmax(1)
    modes = torch.cat([torch.arange(100, 120).repeat_interleave(2), 500 + 10 * middle + torch.arange(10)])
    p = torch.bincount(modes, minlength=1000).double() / 50
    assert report["kl_to_uniform"] == pytest.approx(float((p[p > 0] * (1000 * p[p > 0]).log()).sum()))


def test_report_shape_errors(clf16):
    with pytest.raises(ShapeError, match="digits_report"):
        digits_report(torch.zeros(4, 3, 16, 16), classifier=clf16)
    with pytest.raises(ShapeError, match="stacked_report"):
        stacked_report(torch.zeros(4, 1, 16, 16), classifier=clf16)
    with pytest.raises(ShapeError, match="DigitClassifier"):
        clf16(torch.zeros(2, 1, 8, 8))
