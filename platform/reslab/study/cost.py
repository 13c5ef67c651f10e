"""What a study costs on named GPUs, before it runs: GPU-hours from each trial's compute, without training.

A trial's time on a GPU is its training images over the GPU's training rate for its net, plus its evaluated
images at three times that rate (a forward pass is about a third of a training step). The rate is measured
where reslab has measured it (`MEASURED`, from `benchmarks/gpu.py`), else the GPU's peak dense bf16 rate
times a stated utilisation over the net's 6 x multiply-adds per trained image — the utilisation itself taken
from those measurements, small CIFAR nets using far less of a GPU than ImageNet ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_tflops: float  # peak dense bf16 tensor rate
    source: str


GPUS = {
    "A10G": Gpu("A10G", 70.0, "reported for AWS G5 (NVIDIA's A10 sheet gives 125; none is published for A10G)"),
    "A100": Gpu("A100", 312.0, "NVIDIA A100 SXM datasheet, dense"),
    "H100": Gpu("H100", 989.0, "NVIDIA H100 SXM datasheet, dense"),
    "H200": Gpu("H200", 989.0, "NVIDIA H200 datasheet, dense (the H100 SXM's compute, more memory bandwidth)"),
}
# the share of that peak a trial reaches, by model family, from the H200 run (docs/benchmarks.md): ResNet-50
# at 4,859 img/s is 12 % of 989 TFLOP/s; CIFAR ResNet-20/56/110 at 54k/20k/10k img/s are 1.4-1.7 %
UTILISATION = {"imagenet": 0.12, "cifar": 0.015}
# img/s measured for (GPU, net, shortcut, batch) in bf16 with CUDA graphs (benchmarks/gpu.py; ResNet-50 on images
# resident on the GPU, so without an input pipeline): where a trial matches, it replaces the assumption
MEASURED = {
    ("H200", "cifar_resnet20", "A", 128): 54_493.0,
    ("H200", "cifar_resnet56", "A", 128): 20_219.0,
    ("H200", "cifar_resnet110", "A", 128): 10_379.0,
    ("H200", "resnet50", "B", 256): 4_859.0,
}


def training_rate(gpu: str, net: tuple[str, str | None], family: str, batch_size: int, multiply_adds: float
                  ) -> tuple[float, bool]:  # fmt: skip
    """Training images/s on `gpu` of a trial of `net` (its label with depth, its shortcut), and whether it
    was measured (else assumed)."""
    if (key := (gpu, *net, batch_size)) in MEASURED:
        return MEASURED[key], True
    flops = GPUS[gpu].bf16_tflops * 1e12 * UTILISATION[family]
    return flops / (6.0 * multiply_adds), False


def gpu_seconds(
    gpu: str, net: tuple[str, str | None], family: str, batch_size: int, multiply_adds: float, trained: float,
    evaluated: float,
) -> tuple[float, bool]:  # fmt: skip
    """Seconds one trial takes on one `gpu` (`trained` and `evaluated` images), and whether measured."""
    rate, measured = training_rate(gpu, net, family, batch_size, multiply_adds)
    return trained / rate + evaluated / (3.0 * rate), measured
