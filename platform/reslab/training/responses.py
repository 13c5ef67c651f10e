"""Layer responses (Fig. 7): the standard deviation of every 3x3 convolution's output after its BN,
before the ReLU or the addition, measured over the test set.

The paper's point: residual functions are closer to zero than the unreferenced functions of plain
nets, so ResNets' responses are smaller, and deeper ResNets' smaller still.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

import torch
from torch import nn


class _ResponseTracer:
    """Hooks that find, while the net runs, the BN taking each 3x3 convolution's output (by following the
    tensors, not the order the modules are declared in), and sum each such BN's output."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        self.latest: torch.Tensor | None = None  # the newest 3x3 convolution's output
        self.found: list[nn.Module] = []  # in the order the forward pass reaches them
        self.totals: list[torch.Tensor] = []  # per found layer: count, sum, sum of squares

    def _after_conv(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self.latest = output

    def _before_bn(self, module: nn.Module, inputs: tuple) -> None:
        if inputs[0] is self.latest and all(module is not seen for seen in self.found):
            self.found.append(module)
            self.totals.append(torch.zeros(3, dtype=torch.float64))

    def _after_bn(self, module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        index = next((i for i, seen in enumerate(self.found) if seen is module), None)
        if index is not None:
            values = output.detach().double()
            self.totals[index] += torch.stack(
                [torch.tensor(values.numel()), values.sum().cpu(), values.square().sum().cpu()]
            )

    def __enter__(self) -> _ResponseTracer:
        # BatchNorm2d, and SyncBatchNorm in a data-parallel trial (not a BatchNorm2d: both derive from _BatchNorm)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.handles = [c.register_forward_hook(self._after_conv) for c in self.convs]
        self.handles += [n.register_forward_pre_hook(self._before_bn) for n in norms]
        self.handles += [n.register_forward_hook(self._after_bn) for n in norms]
        self.was_training = self.model.training
        self.model.eval()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for handle in self.handles:
            handle.remove()
        self.model.train(self.was_training)

    def run(self, images: torch.Tensor) -> Any:
        return self.model(images.flatten(0, 1) if images.dim() == 5 else images)

    def check(self) -> None:
        """Fig. 7 is defined for nets whose every 3x3 convolution feeds a BN (the paper's blocks): a net where
        one does not (a pre-activation block sends it to the addition) is refused, naming how many do."""
        if len(self.found) != len(self.convs):
            raise ValueError(
                f"{type(self.model).__name__}: {len(self.found)} of its {len(self.convs)} 3x3 convolutions feed a "
                "BN directly; Fig. 7's response (a 3x3 layer's output after its BN, before the ReLU or the "
                "addition) is defined for nets where every one does, as in the paper's blocks"
            )


@torch.no_grad()
def response_layers(model: nn.Module, images: torch.Tensor) -> list[nn.Module]:
    """The BN layer taking each 3x3 convolution's output, in the order a forward pass of `images` runs them."""
    with _ResponseTracer(model) as tracer:
        tracer.run(images[:1])
    tracer.check()
    return tracer.found


@torch.no_grad()
def layer_responses(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """The std of each 3x3 layer's response over every element of every test image (model in eval mode)."""
    with _ResponseTracer(model) as tracer:
        for images, _labels in batches:
            tracer.run(images)
    if tracer.latest is None:  # nothing to measure on: a data-parallel worker's share of the test set may be empty
        return []
    tracer.check()
    count, total, squares = torch.stack(tracer.totals).unbind(1)
    return (squares / count - (total / count).square()).clamp_min(0).sqrt().tolist()
