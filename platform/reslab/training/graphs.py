"""A training step's forward and backward pass captured once as a CUDA graph and replayed every iteration.

A CIFAR ResNet's step is hundreds of small kernels: launched one by one from Python, the GPU waits on the
launches (ResNet-20 at batch 128 computes for well under a millisecond a step). Replaying a captured graph
launches them all at once. The optimizer step stays eager (one fused kernel on CUDA), so the learning rate
stays an ordinary float and the optimizer's state and checkpoints are untouched. The replay runs the same
kernels on the same values as the eager step, so a graphed run is the eager run (figures: docs/benchmarks.md,
"On a GPU").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

WARMUP_STEPS = 3  # eager passes before the capture (cuDNN's and the allocator's lazy set-up), then undone


class GraphedStep:
    """Forward, loss and backward of `model` on a fixed batch shape, as one CUDA graph.

    Call it with a batch: it copies the batch into the graph's input buffers, replays, and returns the
    batch's summed loss, its number of errors and its top-5 misses (clones, on the device). Gradients are
    left in the parameters' `.grad` for the optimizer, as `loss.backward()` leaves them.
    """

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        autocast_dtype: torch.dtype | None,
        top5_misses: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.model, self.autocast_dtype, self.top5_misses = model, autocast_dtype, top5_misses
        self.images, self.labels = images.clone(), labels.clone()  # the graph's inputs: fixed addresses
        buffers = {name: value.clone() for name, value in model.named_buffers()}  # BN statistics, to undo warm-up
        side = torch.cuda.Stream(images.device)
        side.wait_stream(torch.cuda.current_stream(images.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._pass()
        torch.cuda.current_stream(images.device).wait_stream(side)
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
        for parameter in model.parameters():
            parameter.grad = None  # backward inside the capture allocates the gradients it then writes each replay
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._pass()

    def _pass(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        with self._autocast():
            logits = self.model(self.images)
            loss = F.cross_entropy(logits, self.labels)
        loss.backward()
        logits = logits.detach()
        misses = self.top5_misses(logits, self.labels) if self.top5_misses is not None else None
        return loss.detach().float() * len(self.labels), (logits.argmax(1) != self.labels).sum(), misses

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision as the eager step has it, without autocast's weight cache: casts cached during the
        capture would outlive it, while the graph recasts the weights every replay."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)

    def matches(self, images: torch.Tensor, labels: torch.Tensor) -> bool:
        """Whether a batch fits the captured shapes (a graph replays one shape only)."""
        return images.shape == self.images.shape and labels.shape == self.labels.shape

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        self.images.copy_(images)
        self.labels.copy_(labels)
        self.graph.replay()
        loss, errors, misses = self.outputs  # the next replay overwrites them: hand out copies
        return loss.clone(), errors.clone(), None if misses is None else misses.clone()
