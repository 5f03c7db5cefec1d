"""ganforge's microbenchmarks: hot blocks and whole recipes, reference vs fast paths, CPU and CUDA.

Run ``ganforge bench`` (or ``python -m benchmarks``); see docs/benchmarks.md. The pieces:

- :mod:`benchmarks.probe`: the device's copy bandwidth and compute rate, measured in the same run;
- :mod:`benchmarks.timing`: ``torch.utils.benchmark`` timing in interleaved rounds (median, IQR);
- :mod:`benchmarks.work`: FLOPs and compulsory bytes, and the floor they imply;
- :mod:`benchmarks.cases`, :mod:`benchmarks.block_cases`, :mod:`benchmarks.recipe_cases`: what is run;
- :mod:`benchmarks.suite`: runs cases into the JSON document; :mod:`benchmarks.targets`: the issue's
  targets; :mod:`benchmarks.report`: tables and markdown.
"""

from importlib import import_module
from typing import Any

# Imported on first use, so that `ganforge --help` (which reads benchmarks.cli's options) does not pay for
# torch.utils.benchmark -- nor print its "No CUDA runtime" warning -- on every command.
_WHERE = {
    "Built": "cases", "Case": "cases", "Context": "cases", "Variant": "cases", "Probe": "probe", "run_probe": "probe",
    "SCHEMA": "suite", "Settings": "suite", "all_cases": "suite", "run_case": "suite", "run_suite": "suite",
    "select": "suite", "Stats": "timing", "time_fn": "timing", "time_interleaved": "timing", "Work": "work",
    "compulsory_bytes": "work", "count_flops": "work", "floor": "work",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
