"""Layer responses (Fig. 7): the standard deviation of every 3x3 convolution's output after its BN,
before the ReLU or the addition, measured over the test set.

The paper's point: residual functions are closer to zero than the unreferenced functions of plain
nets, so ResNets' responses are smaller, and deeper ResNets' smaller still.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def response_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN layers that directly follow a 3x3 convolution, in forward (layer index) order."""
    layers, previous = [], None
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and isinstance(previous, nn.Conv2d) and previous.kernel_size == (3, 3):
            layers.append(module)
        if not isinstance(module, nn.Sequential):
            previous = module
    return layers


@torch.no_grad()
def layer_responses(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """The std of each 3x3 layer's response over every element of every test image (model in eval mode)."""
    layers = response_layers(model)
    totals = torch.zeros(len(layers), 3, dtype=torch.float64)  # count, sum, sum of squares

    def accumulate(index: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            values = output.detach().double()
            totals[index] += torch.stack(
                [torch.tensor(values.numel()), values.sum().cpu(), values.square().sum().cpu()]
            )

        return hook

    handles = [layer.register_forward_hook(accumulate(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for images, _labels in batches:
            model(images.flatten(0, 1) if images.dim() == 5 else images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    count, total, squares = totals.unbind(1)
    return (squares / count - (total / count).square()).clamp_min(0).sqrt().tolist()
