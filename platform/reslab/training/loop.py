"""The iteration-based training loop, split into build, train step and evaluate.

Every `eval_every` iterations the loop measures test error and hands a `Report` to a callback (the
CLI prints it; Ray Tune and MLflow plug in there). Training statistics are accumulated on the
device and read once per report, so the hot loop has no host synchronisation.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.stream import TrainingData
from ..distributed import Shard
from .checkpoint import load_checkpoint, save_checkpoint
from .cuda import cuda_problem
from .graphs import GraphedStep
from .recipe import Recipe

# what `Trainer.run` hands a step callback: iteration, the batch's summed loss and error count (on the
# device), the batch size
StepCallback = Callable[[int, torch.Tensor, torch.Tensor, int], None]
WARMUP_WINDOW = 20  # iterations whose mean training error decides the end of the warm-up


@dataclass(frozen=True)
class Report:
    """The state of a run at one reporting point; errors are fractions in [0, 1]."""

    iteration: int  # SGD steps done
    train_error: float  # mean training error over the steps since the previous report
    train_loss: float  # mean training loss over the same steps
    test_error: float  # error on the whole test set
    test_loss: float  # cross-entropy on the same set
    lr: float  # learning rate of the last step
    images_per_second: float  # training throughput since the previous report, evaluation excluded
    validation_error: float | None = None  # error on the validation set held out of training (None: none held out)
    validation_loss: float | None = None  # cross-entropy on the same set
    train_error_top5: float | None = None  # top-5 error over the same steps as train_error (None: not measured)
    test_error_top5: float | None = None  # top-5 error on the test set (ImageNet's tables give both)
    test_error_10crop: float | None = None  # the final report only: 10-crop testing (Tables 2 and 3), when asked
    test_error_10crop_top5: float | None = None
    test_error_multiscale: float | None = None  # the final report only: multi-scale testing (Table 4), when asked
    test_error_multiscale_top5: float | None = None

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class Evaluation(NamedTuple):
    """One pass over an evaluation set: error, mean cross-entropy, and top-5 error where measured."""

    error: float
    loss: float
    error_top5: float | None = None


def top5_misses(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many labels are not among their row's five highest scores (on the device, no host sync)."""
    return (scores.topk(5, dim=1).indices != labels[:, None]).all(dim=1).sum()


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


PRECISIONS = ("auto", "fp32", "bf16")


def native_cpu_bf16() -> str | None:
    """The CPU feature that computes bf16 natively (AMX tiles, AVX512-BF16), or None. oneDNN runs bf16 on any
    AVX-512 CPU, but by emulation there: `torch.ops.mkldnn._is_mkldnn_bf16_supported()` says yes, and training
    runs about 2x slower than fp32 (figures: docs/benchmarks.md)."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return "AVX512-BF16"
    return None


def precision_choice(precision: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for `precision` on `device` (None = full fp32), and why: what `reslab bench` says.

    "auto" takes bf16 where it trains faster than fp32 with the same accuracy (and, unlike fp16, needs no loss
    scaling): every CUDA GPU reslab targets, and CPUs with AMX, whose tile units multiply bf16 matrices. A CPU
    with AVX512-BF16 but no AMX computes bf16 dot products natively, yet oneDNN's bf16 training is slower
    there than fp32, and on CPUs with neither it is emulated: fp32 on both (figures: docs/benchmarks.md).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return (None if precision == "fp32" else torch.bfloat16), f"{precision} as asked"
    if device.type == "cuda":
        return torch.bfloat16, "auto: bf16 (a CUDA GPU computes bf16 natively)"
    feature = native_cpu_bf16()
    if feature == "AMX":
        return torch.bfloat16, "auto: bf16 (this CPU has AMX tiles for bf16 matrix products)"
    if feature == "AVX512-BF16":
        return None, "auto: fp32 (this CPU has AVX512-BF16 but no AMX: bf16 training measured slower than fp32)"
    return None, "auto: fp32 (this CPU has neither AMX nor AVX512-BF16: bf16 would be emulated, about 2x slower)"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None = full fp32); see `precision_choice`."""
    return precision_choice(precision, device)[0]


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when available, else the CPU. Asking for CUDA where torch cannot
    use it is a ValueError saying why (the same answer on every attempt), not torch's driver traceback."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda":
            if problem := cuda_problem():
                raise ValueError(f"--device {requested}: {problem}; use --device cpu, or run where the GPU is")
            if (device.index or 0) >= torch.cuda.device_count():
                raise ValueError(f"--device {requested}: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Trainer:
    """Trains one model on one dataset with one recipe; resumable from its own checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        data: TrainingData,
        recipe: Recipe,
        *,
        device: torch.device | str = "cpu",
        eval_every: int | None = None,
        precision: str = "auto",
        shard: Shard | None = None,
        top5: bool = False,
        cuda_graph: bool = True,
    ) -> None:
        self.recipe = recipe.validate()
        self.top5 = top5  # also measure top-5 error (ImageNet; needs more than 5 classes)
        self._top5_misses = torch.zeros((), device=device, dtype=torch.long)  # training steps since the report
        self.shard = shard or Shard()
        self.device = torch.device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        # channels_last: the layout cuDNN's tensor-core and oneDNN's CPU convolutions are fastest in
        self.memory_format = torch.channels_last
        self.model = model.to(self.device, memory_format=self.memory_format)
        # with data parallelism, steps go through DDP (gradients averaged over the group); state stays in self.model
        self.stepper = self.model if self.shard.size == 1 else self._ddp(self.model)
        self.data = data
        self.eval_every = eval_every or max(1, recipe.iterations // 10)
        # on CUDA: the step's forward and backward replayed as one graph (a single worker; DDP's hooks are not
        # captured) and the optimizer's update as one fused kernel; both are what the eager step computes
        self.cuda_graph = cuda_graph and self.device.type == "cuda" and self.shard.size == 1
        self._graph: GraphedStep | None = None
        self.fused = self.device.type == "cuda"
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            fused=self.fused or None,
        )
        self.iteration = 0
        self.warming_up = recipe.warmup_lr is not None
        self.warmup_errors: deque[float] = deque(maxlen=WARMUP_WINDOW)
        self.history: list[Report] = []

    def _ddp(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision in the chosen dtype, or nothing for fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step; returns the batch's summed loss and number of errors, left on the device."""
        lr = self.recipe.lr_at(self.iteration, self.warming_up)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = images.contiguous(memory_format=self.memory_format)
        if self.cuda_graph:
            return self._graphed_step(images, labels)
        with self._autocast():
            logits = self.stepper(images)
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.top5:
            self._top5_misses += top5_misses(logits.detach(), labels)
        return loss.detach().float() * len(labels), (logits.argmax(1) != labels).sum()

    def _graphed_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`train_step` through the captured graph (captured at the first step, after any resume, since the
        graph holds the addresses of the parameters, their gradients and the BN statistics)."""
        if self._graph is None or not self._graph.matches(images, labels):
            self._graph = GraphedStep(
                self.model, images, labels, self.autocast_dtype, top5_misses if self.top5 else None
            )
        loss, errors, misses = self._graph(images, labels)
        self.optimizer.step()  # the gradients are the graph's, rewritten by every replay: never zeroed
        if misses is not None:
            self._top5_misses += misses
        return loss, errors

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None) -> Evaluation:
        """Error, mean cross-entropy (and top-5 error with `top5`) on the test set, or on `batches`; multi-crop
        inputs (N, crops, C, H, W) are scored by averaging the crops' softmax outputs, as in the paper's
        10-crop testing."""
        self.model.eval()
        errors, loss, count = torch.zeros((), device=self.device), torch.zeros((), device=self.device), 0
        misses5 = torch.zeros((), device=self.device)
        for images, labels in self.data.test_batches() if batches is None else batches:
            with self._autocast():
                if isinstance(images, list):  # one image at several scales (fully convolutional): mean softmax
                    scores = [self.model(x.contiguous(memory_format=self.memory_format)).float() for x in images]
                    probs = torch.stack([s.softmax(1) for s in scores]).mean(0)
                    log_probs = probs.clamp_min(1e-12).log()
                elif images.dim() == 5:
                    crops = images.shape[1]
                    flat = images.flatten(0, 1).contiguous(memory_format=self.memory_format)
                    probs = self.model(flat).float().softmax(1).view(len(labels), crops, -1).mean(1)
                    log_probs = probs.clamp_min(1e-12).log()
                else:
                    log_probs = self.model(images.contiguous(memory_format=self.memory_format)).float().log_softmax(1)
            loss += F.nll_loss(log_probs, labels, reduction="sum")
            errors += (log_probs.argmax(1) != labels).sum()
            if self.top5:
                misses5 += top5_misses(log_probs, labels)
            count += len(labels)
        self.model.train()
        counted = torch.tensor(float(count), device=self.device)
        totals = self.shard.sum(torch.stack([errors.double(), loss.double(), counted.double(), misses5.double()]))
        top5 = (totals[3] / totals[2]).item() if self.top5 else None
        return Evaluation((totals[0] / totals[2]).item(), (totals[1] / totals[2]).item(), top5)

    def _update_warmup(self, batch_errors: torch.Tensor, batch_size: int) -> None:
        """End the warm-up once the mean training error of the last steps is below the threshold."""
        totals = self.shard.sum(
            torch.stack([batch_errors.double(), torch.tensor(float(batch_size), device=self.device)])
        )
        self.warmup_errors.append((totals[0] / totals[1]).item())
        full = len(self.warmup_errors) == self.warmup_errors.maxlen
        if full and sum(self.warmup_errors) / len(self.warmup_errors) < self.recipe.warmup_until_error:
            self.warming_up = False

    def run(
        self, on_report: Callable[[Report], None] | None = None, on_step: StepCallback | None = None
    ) -> Report | None:
        """Train until `recipe.iterations`, reporting every `eval_every` steps and at the end. `on_step` sees
        every step (iteration, the batch's summed loss and errors as device tensors, its size): reading a
        tensor waits for the device, so a progress display reads them only when it redraws."""
        loss_sum = torch.zeros((), device=self.device)
        error_sum = torch.zeros((), device=self.device, dtype=torch.long)
        seen, started = 0, time.perf_counter()
        while self.iteration < self.recipe.iterations:
            images, labels = self.data.train_batch(self.iteration)
            batch_loss, batch_errors = self.train_step(images, labels)
            loss_sum += batch_loss
            error_sum += batch_errors
            seen += len(labels)
            if self.warming_up:
                self._update_warmup(batch_errors, len(labels))
            self.iteration += 1
            if on_step is not None:
                on_step(self.iteration, batch_loss, batch_errors, len(labels))
            if self.iteration % self.eval_every == 0 or self.iteration == self.recipe.iterations:
                seen_total = torch.tensor(float(seen), device=self.device, dtype=torch.float64)
                sums = [loss_sum.double(), error_sum.double(), seen_total, self._top5_misses.double()]
                totals = self.shard.sum(torch.stack(sums))
                train_loss, train_errors = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
                train_top5 = (totals[3] / totals[2]).item() if self.top5 else None
                self._top5_misses.zero_()
                elapsed = time.perf_counter() - started
                report = self._report(train_loss, train_errors, totals[2].item() / elapsed, train_top5)
                if on_report is not None:
                    on_report(report)
                loss_sum.zero_()
                error_sum.zero_()
                seen, started = 0, time.perf_counter()
        return self.history[-1] if self.history else None

    def _report(
        self, train_loss: float, train_error: float, images_per_second: float, train_top5: float | None = None
    ) -> Report:
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} by iteration {self.iteration}")
        test = self.evaluate()
        validation = self.evaluate(self.data.validation_batches()) if self.data.has_validation else None
        lr = self.recipe.lr_at(self.iteration - 1, self.warming_up)
        finals = {}
        if self.iteration == self.recipe.iterations:  # the paper's final tests, once (costly: 10 crops an image)
            for name, batches in self.data.final_evaluations().items():
                final = self.evaluate(batches)
                finals |= {f"test_error_{name}": final.error, f"test_error_{name}_top5": final.error_top5}
        report = Report(
            self.iteration, train_error, train_loss, test.error, test.loss, lr, images_per_second,
            validation.error if validation else None, validation.loss if validation else None,
            train_top5, test.error_top5, **finals,
        )  # fmt: skip
        self.history.append(report)
        return report

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this run stands."""
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {
            "iteration": self.iteration,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "recipe": self.recipe.to_dict(),
            "warming_up": self.warming_up,
            "warmup_errors": list(self.warmup_errors),
            "history": [r.as_dict() for r in self.history],
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`; a checkpoint of another recipe raises rather than mixing runs."""
        if state["recipe"] != self.recipe.to_dict():
            raise ValueError(f"checkpoint was made with recipe {state['recipe']}, not {self.recipe.to_dict()}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # a checkpoint from another device keeps this one's kernel
            group["fused"] = self.fused or None
        self.iteration = state["iteration"]
        self.warming_up = state["warming_up"]
        self.warmup_errors = deque(state["warmup_errors"], maxlen=WARMUP_WINDOW)
        self.history = [Report(**r) for r in state["history"]]
        # Generator states are host byte tensors; `resume` maps the whole checkpoint to the device.
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])

    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write an atomic checkpoint of this run (plus any `extra` plain values, e.g. the config)."""
        return save_checkpoint(path, {**self.state_dict(), **extra})

    def resume(self, path: str | Path) -> dict[str, Any]:
        """Load the checkpoint at `path` into this run and return it (for its extra values)."""
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state)
        return state
