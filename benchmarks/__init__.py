"""ganforge's microbenchmarks: hot blocks and whole recipes, reference vs fast paths, CPU and CUDA.

Run ``ganforge bench`` (or ``python -m benchmarks``); see docs/benchmarks.md. The pieces:

- :mod:`benchmarks.probe`: the device's copy bandwidth and compute rate, measured in the same run;
- :mod:`benchmarks.timing`: ``torch.utils.benchmark`` timing in interleaved rounds (median, IQR);
- :mod:`benchmarks.work`: FLOPs and compulsory bytes, and the floor they imply;
- :mod:`benchmarks.cases`, :mod:`benchmarks.block_cases`, :mod:`benchmarks.recipe_cases`: what is run;
- :mod:`benchmarks.suite`: runs cases into the JSON document; :mod:`benchmarks.targets`: the issue's
  targets; :mod:`benchmarks.report`: tables and markdown.
"""

from .cases import Built, Case, Context, Variant
from .probe import Probe, run_probe
from .suite import SCHEMA, Settings, all_cases, run_case, run_suite, select
from .timing import Stats, time_fn, time_interleaved
from .work import Work, compulsory_bytes, count_flops, floor

__all__ = [
    "SCHEMA", "Built", "Case", "Context", "Probe", "Settings", "Stats", "Variant", "Work", "all_cases",
    "compulsory_bytes", "count_flops", "floor", "run_case", "run_probe", "run_suite", "select", "time_fn",
    "time_interleaved",
]
