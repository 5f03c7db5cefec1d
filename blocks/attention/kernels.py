"""Softmax attention ``softmax(Q Kᵀ · scale) V`` in several formulations, shared by the attention blocks.

All formulations take the ``scaled_dot_product_attention`` layout: q (B, heads, N, Dq), k (B, heads, M, Dq),
v (B, heads, M, Dv) -> (B, heads, N, Dv). The value width Dv may differ from Dq (BigGAN's self-attention
uses C/8 for queries and keys but C/2 for values).

- ``"ref"``: the textbook form written out (max-subtracted exponentials over their sum); the test oracle.
- ``"bmm"``: ``torch.bmm`` + ``F.softmax`` on (B·heads)-batched matrices, as BigGAN-PyTorch does.
- ``"sdpa"``: ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on CUDA; on CPU a
  fused kernel or the math fallback).
- ``"chunked"``: queries in chunks of ``chunk_size``; the (N, M) score matrix is never materialised, only
  (chunk_size, M) slices. Under autograd each chunk is checkpointed (recomputed in backward), so training
  is memory-linear in N too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["ATTENTION_IMPLS", "attend"]

ATTENTION_IMPLS = ("ref", "chunked", "bmm", "sdpa")


def _ref(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    scores = torch.einsum("bhnd,bhmd->bhnm", q, k) * scale  # (B, h, N, M)
    e = (scores - scores.amax(dim=-1, keepdim=True)).exp()
    weights = e / e.sum(dim=-1, keepdim=True)  # each row sums to 1 over the M keys
    return torch.einsum("bhnm,bhmd->bhnd", weights, v)  # (B, h, N, Dv)


def _bmm(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    b, h, n, dq = q.shape
    m, dv = v.shape[-2:]
    q2, k2, v2 = q.reshape(b * h, n, dq), k.reshape(b * h, m, dq), v.reshape(b * h, m, dv)
    scores = torch.bmm(q2, k2.transpose(1, 2))  # (B·h, N, M)
    if scale != 1.0:
        scores = scores * scale
    return torch.bmm(F.softmax(scores, dim=-1), v2).view(b, h, n, dv)


def _chunk(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    scores = torch.matmul(q, k.transpose(-1, -2))  # (B, h, chunk, M)
    if scale != 1.0:
        scores = scores * scale
    return torch.matmul(F.softmax(scores, dim=-1), v)


def _chunked(q: Tensor, k: Tensor, v: Tensor, scale: float, chunk_size: int) -> Tensor:
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    outs = []
    for qc in q.split(chunk_size, dim=2):
        if needs_grad:
            # Recompute the chunk's scores in backward instead of keeping all N x M of them alive.
            outs.append(checkpoint(_chunk, qc, k, v, scale, use_reentrant=False))
        else:
            outs.append(_chunk(qc, k, v, scale))
    return torch.cat(outs, dim=2)  # (B, h, N, Dv)


def attend(
    q: Tensor, k: Tensor, v: Tensor, scale: float, impl: str = "ref", chunk_size: int = 1024
) -> Tensor:
    """``softmax(q kᵀ · scale) v`` with the formulation ``impl``.

    Args:
        q: queries.
        k: keys, same width as the queries.
        v: values.
        scale: multiplies the scores before the softmax (1 for SAGAN/BigGAN, 1/sqrt(Dq) for transformers).
        impl: one of ``ATTENTION_IMPLS``.
        chunk_size: queries per chunk for ``"chunked"``.

    Shape:
        - q: (B, heads, N, Dq); k: (B, heads, M, Dq); v: (B, heads, M, Dv).
        - output: (B, heads, N, Dv).
    """
    if impl == "ref":
        return _ref(q, k, v, scale)
    if impl == "bmm":
        return _bmm(q, k, v, scale)
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if impl == "chunked":
        if chunk_size < 1:
            raise ValueError(f"attend: chunk_size must be >= 1, got {chunk_size}")
        return _chunked(q, k, v, scale, chunk_size)
    raise ValueError(f"attend: impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
