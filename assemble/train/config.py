"""The recipe's ``objective``, ``train`` and ``data`` sections, validated into plain dataclasses.

```yaml
objective:
  loss: non_saturating                    # an adversarial loss key, or {least_squares: {a: -1, b: 1, c: 0}}
  logits: [out0, out1]                    # D registers holding adversarial logits (default: D's first output)
  regularizers:                           # each with its own weight/interval arguments
    - r1: {gamma: 10, interval: 16}
    - path_length: {weight: 2, interval: 4}
  terms:                                  # auxiliary losses on named registers
    - l1: {network: G, weight: 100, inputs: {fake: G.img, real: D_real.img}}
train:
  batch: 32
  steps: 2000
  n_critic: 1
  critic_boost: {n: 100, first: 25, every: 500}   # WGAN: n critic updates for the first G steps and every 500th
  optimizers:
    G: {type: adam, lr: 0.002, betas: [0.0, 0.99], eps: 1.0e-8}
    D: {type: adam, lr: 0.002, betas: [0.0, 0.99]}
  ema: {half_life_kimg: 10, ramp_up: 0.05}
  style_mixing: 0.9
  precision: fp32                         # fp32 | bf16 | fp16 (autocast; fp16 with loss scaling)
  accumulate: 1                           # gradient accumulation (micro-batches per step)
  schedule: {...}                         # progressive growing (see ProgressiveSchedule)
data: {name: digits, size: 16, bind: {img: img, c: label}}
```

Term inputs name registers of one of three runs: ``G`` (the generator's run on the sampled inputs, with its
inputs and side outputs), ``D_fake`` (the discriminator on the fakes) and ``D_real`` (the discriminator on
the real batch, with the real data as its inputs). A list of references gives a list.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import blocks
from blocks.registry import UnknownKeyError

from ..errors import Collector
from ..expand import Variables, resolve
from ..expr import ExprError
from ..validate import check_args

NAMESPACES = ("G", "D_fake", "D_real")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
PRECISIONS = ("fp32", "bf16", "fp16")
TRAIN_KEYS = ("batch", "steps", "n_critic", "optimizers", "ema", "style_mixing", "precision", "accumulate",
              "schedule", "seed", "log_every", "sample_every", "checkpoint_every", "eval_every", "keep",
              "sample_grid", "g_labels", "reset_optimizers_on_stage", "pl_batch_shrink", "d_joint", "critic_boost",
              "lr_decay")


@dataclass
class OptimizerConfig:
    type: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    alpha: float = 0.99


@dataclass
class TermConfig:
    key: str
    network: str
    weight: float
    inputs: dict[str, Any]
    args: dict[str, Any]


@dataclass
class RegularizerConfig:
    key: str
    args: dict[str, Any]


@dataclass
class EMAConfig:
    half_life_kimg: float = 10.0
    ramp_up: float | None = 0.05


@dataclass
class ScheduleConfig:
    """Progressive growing (Karras et al. 2018, sec. 3 and appendix A.1): each stage after the first
    fades in for ``fade_images`` images (α ramps 0 -> 1), then trains stably for ``images_per_phase``."""

    start_stage: int = 0
    images_per_phase: int = 800_000
    fade_images: int = 800_000
    batch: dict[int, int] = field(default_factory=dict)


@dataclass
class TrainConfig:
    loss: str = "non_saturating"
    loss_args: dict[str, Any] = field(default_factory=dict)
    logits: tuple[str, ...] = ()
    regularizers: list[RegularizerConfig] = field(default_factory=list)
    terms: list[TermConfig] = field(default_factory=list)
    batch: int = 32
    steps: int = 1000
    n_critic: int = 1
    optimizers: dict[str, OptimizerConfig] = field(default_factory=lambda: {"G": OptimizerConfig(),
                                                                           "D": OptimizerConfig()})
    ema: EMAConfig | None = None
    style_mixing: float = 0.0
    precision: str = "fp32"
    accumulate: int = 1
    schedule: ScheduleConfig | None = None
    seed: int = 0
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    eval_every: int = 0
    keep: int = 3
    sample_grid: int = 64
    g_labels: str = "prior"  # class inputs of G: "prior" (uniform) or "data" (the real batch's labels)
    reset_optimizers_on_stage: bool = True
    pl_batch_shrink: int = 2
    d_joint: bool = False  # D sees fakes and reals in one forward (BigGAN, SPADE): one SN power step per update
    lr_decay: str = "none"  # "linear": both learning rates fall linearly to 0 at train.steps (WGAN-GP, SN-GAN)
    # WGAN (martinarjovsky/WassersteinGAN main.py): {n, first, every} -- n critic updates instead of n_critic
    # while fewer than `first` G steps are done and at every `every`-th G step
    critic_boost: dict[str, int] | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _one_key(item: Any, path: str, issues: Collector) -> tuple[str, dict[str, Any]] | None:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        key, args = next(iter(item.items()))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            issues.add(f"{path}.{key}", f"arguments must be a mapping, found {args!r}")
            return None
        return key, dict(args)
    issues.add(path, f"expected a key or {{key: {{args}}}}, found {item!r}")
    return None


def _entry(registry: blocks.Registry, key: str, path: str, issues: Collector) -> blocks.Entry | None:
    try:
        return registry.entry(key)
    except UnknownKeyError as err:
        issues.add(path, str(err))
        return None


def _number(value: Any, path: str, issues: Collector, *, integer: bool = False, low: float | None = None) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or (low is not None and value < low):
        kind = "an integer" if integer else "a number"
        bound = f" >= {low}" if low is not None else ""
        issues.add(path, f"expects {kind}{bound}, found {value!r}")
        return None
    return value


def parse(recipe: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Validate ``objective``, ``train`` and ``data``; every problem is reported at once."""
    from ..errors import RecipeError

    issues = Collector()
    cfg = TrainConfig()
    obj = recipe.get("objective") or {}
    if not isinstance(obj, dict):
        raise RecipeError("objective must be a mapping", recipe.get("name", ""))
    for k in obj:
        if k not in ("loss", "logits", "regularizers", "terms"):
            issues.add(f"objective.{k}", "unknown key; allowed: loss, logits, regularizers, terms")
    loss = _one_key(obj.get("loss", "non_saturating"), "objective.loss", issues)
    if loss:
        entry = _entry(blocks.LOSSES, loss[0], "objective.loss", issues)
        if entry is not None and entry.extra.get("role") != "adversarial":
            issues.add("objective.loss", f"'{loss[0]}' is not an adversarial loss; put it under objective.terms")
        elif entry is not None:
            cfg.loss = loss[0]
            cfg.loss_args = check_args(entry, loss[1], f"objective.loss.{loss[0]}", issues, "")
    logits = obj.get("logits", [])
    cfg.logits = tuple([logits] if isinstance(logits, str) else logits)
    for i, item in enumerate(obj.get("regularizers") or []):
        path = f"objective.regularizers[{i}]"
        parsed = _one_key(item, path, issues)
        if parsed and (entry := _entry(blocks.REGULARIZERS, parsed[0], f"{path}.{parsed[0]}", issues)):
            args = check_args(entry, parsed[1], f"{path}.{parsed[0]}", issues, "")
            cfg.regularizers.append(RegularizerConfig(parsed[0], args))
    for i, item in enumerate(obj.get("terms") or []):
        path = f"objective.terms[{i}]"
        parsed = _one_key(item, path, issues)
        if not parsed:
            continue
        key, args = parsed
        entry = _entry(blocks.LOSSES, key, f"{path}.{key}", issues)
        if entry is None:
            continue
        if entry.extra.get("role") != "auxiliary":
            issues.add(f"{path}.{key}", f"'{key}' is an adversarial loss; name it in objective.loss")
            continue
        network = args.pop("network", "G")
        if network not in ("G", "D"):
            issues.add(f"{path}.{key}.network", f"the network whose loss the term joins: G or D, found {network!r}")
        weight = _number(args.pop("weight", 1.0), f"{path}.{key}.weight", issues)
        inputs = args.pop("inputs", {}) or {}
        needs = entry.obj.needs
        if not isinstance(inputs, dict):
            issues.add(f"{path}.{key}.inputs", f"maps the term's inputs {list(needs)} to registers")
            inputs = {}
        for name, ref in inputs.items():
            if name not in needs:
                issues.add(f"{path}.{key}.inputs.{name}", f"'{key}' takes {list(needs)}")
            for r in ref if isinstance(ref, list) else [ref]:
                ns = r.split(".", 1)[0] if isinstance(r, str) else None
                if ns not in NAMESPACES or "." not in r:
                    issues.add(f"{path}.{key}.inputs.{name}",
                               f"a reference is <run>.<register> with run one of {', '.join(NAMESPACES)}; found {r!r}")
        cfg.terms.append(TermConfig(key, network, weight or 0.0,
                                    inputs, check_args(entry, args, f"{path}.{key}", issues, "")))

    train = dict(recipe.get("train") or {})
    train.update(overrides or {})
    for k in train:
        if k not in TRAIN_KEYS:
            close = difflib.get_close_matches(k, TRAIN_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            issues.add(f"train.{k}", f"unknown key{hint}; allowed: {', '.join(TRAIN_KEYS)}")
    for k, integer, low in (("batch", True, 1), ("steps", True, 0), ("n_critic", True, 1), ("accumulate", True, 1),
                            ("seed", True, 0), ("log_every", True, 1), ("sample_every", True, 0),
                            ("checkpoint_every", True, 0), ("eval_every", True, 0), ("keep", True, 1),
                            ("sample_grid", True, 1), ("style_mixing", False, 0), ("pl_batch_shrink", True, 1)):
        if k in train:
            v = _number(train[k], f"train.{k}", issues, integer=integer, low=low)
            if v is not None:
                setattr(cfg, k, v)
    if cfg.style_mixing > 1:
        issues.add("train.style_mixing", f"a probability in [0, 1], found {cfg.style_mixing}")
    if cfg.batch % cfg.accumulate:
        issues.add("train.accumulate", f"must divide the batch ({cfg.batch}), found {cfg.accumulate}")
    precision = train.get("precision", "fp32")
    if precision not in PRECISIONS:
        issues.add("train.precision", f"one of {', '.join(PRECISIONS)}, found {precision!r}")
    else:
        cfg.precision = precision
    g_labels = train.get("g_labels", "prior")
    if g_labels not in ("prior", "data"):
        issues.add("train.g_labels", f"'prior' or 'data', found {g_labels!r}")
    cfg.g_labels = g_labels
    cfg.reset_optimizers_on_stage = bool(train.get("reset_optimizers_on_stage", True))
    cfg.d_joint = bool(train.get("d_joint", False))
    lr_decay = train.get("lr_decay", "none")
    if lr_decay not in ("none", "linear"):
        issues.add("train.lr_decay", f"'none' or 'linear', found {lr_decay!r}")
    else:
        cfg.lr_decay = lr_decay
    boost = train.get("critic_boost")
    if boost:
        if not isinstance(boost, dict) or set(boost) - {"n", "first", "every"} or "n" not in boost:
            issues.add("train.critic_boost", f"critic_boost takes n, first and every, found {boost!r}")
        else:
            cfg.critic_boost = {k: _number(boost.get(k, 0), f"train.critic_boost.{k}", issues, integer=True,
                                           low=1 if k == "n" else 0) or 0 for k in ("n", "first", "every")}
    opts = train.get("optimizers") or {}
    for net in ("G", "D"):
        raw = dict(opts.get(net) or {})
        oc = OptimizerConfig()
        for k, v in raw.items():
            path = f"train.optimizers.{net}.{k}"
            if k == "type":
                if v not in OPTIMIZERS:
                    issues.add(path, f"one of {', '.join(OPTIMIZERS)}, found {v!r}")
                else:
                    oc.type = v
            elif k == "betas":
                if not (isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(b, int | float) for b in v)):
                    issues.add(path, f"two numbers, found {v!r}")
                else:
                    oc.betas = (float(v[0]), float(v[1]))
            elif k in ("lr", "eps", "weight_decay", "momentum", "alpha"):
                if _number(v, path, issues, low=0) is not None:
                    setattr(oc, k, float(v))
            else:
                issues.add(path, "unknown optimizer setting; allowed: type, lr, betas, eps, weight_decay, "
                                 "momentum, alpha")
        cfg.optimizers[net] = oc
    for k in opts:
        if k not in ("G", "D"):
            issues.add(f"train.optimizers.{k}", "optimizers are given for G and D")
    ema = train.get("ema")
    if ema:
        if not isinstance(ema, dict) or set(ema) - {"half_life_kimg", "ramp_up"}:
            issues.add("train.ema", f"ema takes half_life_kimg and ramp_up, found {ema!r}")
        else:
            cfg.ema = EMAConfig(float(ema.get("half_life_kimg", 10.0)),
                                None if ema.get("ramp_up") is None else float(ema["ramp_up"]))
    sched = train.get("schedule")
    if sched:
        allowed = {"start_stage", "images_per_phase", "fade_images", "batch"}
        if not isinstance(sched, dict) or set(sched) - allowed:
            issues.add("train.schedule", f"schedule takes {', '.join(sorted(allowed))}, found {sched!r}")
        else:
            batch = {int(k): int(v) for k, v in (sched.get("batch") or {}).items()}
            cfg.schedule = ScheduleConfig(int(sched.get("start_stage", 0)),
                                          int(sched.get("images_per_phase", 800_000)),
                                          int(sched.get("fade_images", 800_000)), batch)
    data = recipe.get("data") or {}
    if isinstance(data, dict):
        try:  # data values may use the recipe's variables: {size: "$resolution"}
            data = resolve(data, Variables(recipe.get("vars") or {}))
        except ExprError as err:
            issues.add("data", str(err))
    if not isinstance(data, dict):
        issues.add("data", f"data is a mapping like {{name: digits, size: 16}}, found {data!r}")
    else:
        cfg.data = dict(data)
    issues.raise_if_any(recipe.get("name", ""))
    return cfg
