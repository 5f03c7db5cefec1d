"""Bind a network's data-fed inputs to dataset fields, checking kinds, shapes and class counts.

For each input whose kind comes from data (image, class, label_map, vector, text_embedding, tokens; latents
and coordinates are sampled), the field is chosen by, in order: the explicit mapping (``data.bind`` in a
recipe), a field of the same name, the only field of a matching kind. Every problem is collected and raised
at once in one ValueError, each line naming the input, the field, both shapes and a fix.
"""

from __future__ import annotations

from ..inputs import InputSpec
from .base import FieldSpec

DATA_KINDS = ("image", "class", "label_map", "vector", "text_embedding", "tokens")
# input kind -> field kinds that can feed it (a text embedding is a plain vector when the data has one)
_ACCEPTS = {"image": ("image",), "class": ("class",), "label_map": ("label_map",), "vector": ("vector",),
            "text_embedding": ("text_embedding", "vector"), "tokens": ("tokens",)}


def _decl(spec: InputSpec | FieldSpec) -> str:
    if spec.kind == "class":
        return f"class({spec.n_classes})"
    return f"{spec.kind}({', '.join(str(s) for s in spec.shape)})"


def _size_hint(shape: tuple[int, ...]) -> str:
    h, w = shape[-2:]
    return f"data.size: {h}" if h == w else f"data.size: [{h}, {w}]"


def _mismatch(name: str, spec: InputSpec, key: str, field: FieldSpec) -> str | None:
    """One line describing why ``field`` cannot feed ``spec``, or None when it can."""
    head = f"input '{name}' expects {_decl(spec)} but data field '{key}' is {_decl(field)}"
    if field.kind not in _ACCEPTS[spec.kind]:
        return f"{head}: different kinds; map '{name}' to a {spec.kind} field with data.bind: {{{name}: FIELD}}"
    if spec.kind == "class":
        if spec.n_classes == field.n_classes:
            return None
        return (f"{head}: the network is built for {spec.n_classes} classes, the data has {field.n_classes}; "
                f"build the recipe with {field.n_classes} classes or choose data with {spec.n_classes}")
    if tuple(spec.shape) == tuple(field.shape):
        return None
    fixes = []
    if spec.kind in ("image", "label_map"):
        if spec.shape[1:] != field.shape[1:]:
            fixes.append(f"set {_size_hint(spec.shape)}")
        if spec.shape[0] != field.shape[0]:
            fixes.append(f"set data.channels: {spec.shape[0]}" if spec.kind == "image"
                         else f"set data.n_classes: {spec.shape[0]}")
    else:
        fixes.append(f"give the network input size {field.shape[-1]} or use data with {spec.shape[-1]}")
    return f"{head}: {' and '.join(fixes)}"


def bind(dataset_fields: dict[str, FieldSpec], inputs: dict[str, InputSpec],
         explicit: dict[str, str] | None) -> dict[str, str]:
    """Map each data-fed network input to a dataset field.

    Args:
        dataset_fields: the dataset's ``fields``.
        inputs: the network's ``input_specs`` (name -> InputSpec).
        explicit: ``{input name: field name}`` overrides (the recipe's ``data.bind``), or None.

    Returns:
        ``{input name: field name}`` for every bound input; optional inputs with no matching field are left out.

    Raises:
        ValueError: listing every missing field, ambiguous choice, kind/shape/class-count mismatch and
            explicit entry naming an unknown input or field, each with a fix.
    """
    explicit = dict(explicit or {})
    problems: list[str] = []
    bound: dict[str, str] = {}
    fields_desc = ", ".join(f"{k}: {_decl(f)}" for k, f in dataset_fields.items()) or "none"
    for name in explicit:
        if name not in inputs:
            problems.append(f"data.bind names input '{name}', but the network's inputs are "
                            f"{', '.join(inputs) or 'none'}; remove or rename that entry")
        elif inputs[name].kind not in DATA_KINDS:
            problems.append(f"data.bind names input '{name}', a {inputs[name].kind} that is sampled, not read "
                            f"from data; remove that entry")
    for name, spec in inputs.items():
        if spec.kind not in DATA_KINDS:
            continue
        if name in explicit:
            key = explicit[name]
            if key not in dataset_fields:
                problems.append(f"data.bind maps input '{name}' to field '{key}', which the data lacks; "
                                f"its fields are {fields_desc}")
                continue
        elif name in dataset_fields:
            key = name
        else:
            candidates = [k for k, f in dataset_fields.items() if f.kind in _ACCEPTS[spec.kind]]
            # a text embedding prefers a text_embedding field over a plain vector one
            preferred = [k for k in candidates if dataset_fields[k].kind == spec.kind]
            candidates = preferred or candidates
            if len(candidates) > 1:
                problems.append(f"input '{name}' ({_decl(spec)}) could read any of the fields "
                                f"{', '.join(candidates)}; choose one with data.bind: {{{name}: {candidates[0]}}}")
                continue
            if not candidates:
                if not spec.optional:
                    problems.append(f"input '{name}' expects {_decl(spec)} but the data has no {spec.kind} "
                                    f"field (its fields are {fields_desc}); use data that has one or map it "
                                    f"with data.bind: {{{name}: FIELD}}")
                continue
            key = candidates[0]
        problem = _mismatch(name, spec, key, dataset_fields[key])
        if problem:
            problems.append(problem)
        else:
            bound[name] = key
    if problems:
        raise ValueError("cannot bind the network's inputs to the data:\n  " + "\n  ".join(problems))
    return bound
