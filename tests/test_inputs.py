"""Network input declarations (assemble.inputs.parse_input)."""

import pytest

from assemble.inputs import parse_input


@pytest.mark.parametrize("text, n", [("class(10)", 10), ("class(n)", 7), ("class(n * 2)?", 14)])
def test_class_declarations_parse(text, n):
    """`class` is a Python keyword: the kind is split off before the arguments are parsed."""
    spec = parse_input("c", text, {"n": 7})
    assert (spec.kind, spec.n_classes, spec.shape, spec.is_index) == ("class", n, (), True)
    assert spec.optional == text.endswith("?")


@pytest.mark.parametrize("text", ["latent(4)(5)", "latent(4) + 1", "latent(4", "class(prior=uniform, 4)"])
def test_malformed_declarations_are_rejected(text):
    with pytest.raises(ValueError, match="input declaration"):
        parse_input("z", text, {})


def test_other_kinds_unchanged():
    assert parse_input("z", "latent(n, uniform)?", {"n": 3}).shape == (3,)
    assert parse_input("z", "latent(n, uniform)?", {"n": 3}).prior == "uniform"
    assert parse_input("img", "image(3, n, n)", {"n": 8}).shape == (3, 8, 8)
