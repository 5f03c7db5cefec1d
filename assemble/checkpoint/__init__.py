"""Safe, atomic, resumable checkpoints: tensors in safetensors, everything else in JSON, nothing pickled.

See :mod:`assemble.checkpoint.files` for the format (a ``ckpt-N.safetensors`` + ``ckpt-N.json`` pair written
atomically, verified by size and sha256 before parsing) and :mod:`assemble.checkpoint.state` for turning
modules, optimizers and random generators into (tensors, JSON) and back.
"""

from .files import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .state import (
    generator_state,
    load_module_tensors,
    load_optimizer_state,
    module_tensors,
    optimizer_state,
    rng_state,
    set_generator_state,
    set_rng_state,
)

__all__ = [
    "CheckpointError", "generator_state", "latest_checkpoint", "load_checkpoint", "load_module_tensors",
    "load_optimizer_state", "module_tensors", "optimizer_state", "rng_state", "save_checkpoint",
    "set_generator_state", "set_rng_state",
]
