"""Parameter and multiply-add counts, the figures of Table 1 and Section 4.2."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Complexity:
    """The size of a net: learnable parameters and multiply-adds of one forward pass per image."""

    parameters: int
    multiply_adds: int


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
    return output[0].numel() * kernel


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    return output[0].numel() * module.in_features


def complexity(model: nn.Module, input_size: tuple[int, int, int]) -> Complexity:
    """Count parameters and the multiply-adds of convolutions and fully-connected layers.

    Like the paper, only weighted layers count (BN, ReLU, pooling and additions are ignored). The
    forward pass runs on a copy on the meta device, so even ResNet-1202 is counted instantly.
    """
    parameters = sum(p.numel() for p in model.parameters())
    meta_model = _meta_copy(model)
    total = 0

    def count(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _conv_macs(module, output) if isinstance(module, nn.Conv2d) else _linear_macs(module, output)

    hooks = [m.register_forward_hook(count) for m in meta_model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            meta_model.eval()(torch.empty(1, *input_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return Complexity(parameters=parameters, multiply_adds=total)


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose tensors live on the meta device (shapes only, no storage)."""
    return copy.deepcopy(model).to("meta")
