"""What the two PyTorch encoders (e5_torch for multilingual-e5-small, use_torch for USE) share: the precision
choice, the row padding that bounds oneDNN's kernel cache, and the product with its bias added apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AMX or AVX-512 BF16). Elsewhere it emulates it, slower than
    float32, so the encoders use float32 there."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def padded_rows(rows: int) -> int:
    """Rows a pass's matrix products run on: the token count rounded up to one of a few sizes.

    oneDNN (torch's bfloat16 matrix product) compiles and caches a kernel, about 1 MB, for every distinct shape it
    sees: with free shapes the process grew by 280 MB over 900 texts of mixed lengths. Multiples of 16 up to 64,
    then of 64, bound that cache for at most 15 or 63 zero rows per pass.
    """
    step = 16 if rows <= 64 else 64
    return -(-rows // step) * step


def linear(x: torch.Tensor, weight_bias: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x @ weight.T + bias, the bias added apart: oneDNN's bfloat16 product with a fused bias (addmm) took twice
    as long here as the product alone plus an addition."""
    weight, bias = weight_bias
    return F.linear(x, weight) + bias
