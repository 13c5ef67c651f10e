"""The CUDA path: the captured step is the eager step, resumes exactly, and the CPU path is left as it was.

The CUDA tests run where torch finds a GPU (benchmarks/gpu.py's machine; never CI's): there they compare a
graphed run with an eager one bit for bit. The rest runs everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reslab.data import TensorData, synthetic_splits
from reslab.data.stream import to_device
from reslab.models import create_model
from reslab.training import Recipe, TrainConfig, Trainer

SPLITS = synthetic_splits(num_train=512, num_test=128)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _trainer(device: str, *, cuda_graph: bool, precision: str = "fp32", iterations: int = 24) -> Trainer:
    torch.manual_seed(0)
    data = TensorData(SPLITS, 64, seed=0, device=device)
    recipe = Recipe(batch_size=64, iterations=iterations, milestones=(iterations // 2,))
    return Trainer(
        create_model("cifar_resnet20"), data, recipe, device=device, eval_every=iterations // 2,
        precision=precision, cuda_graph=cuda_graph,
    )  # fmt: skip


def _weights(trainer: Trainer) -> torch.Tensor:
    return torch.cat([v.detach().double().flatten().cpu() for v in trainer.model.state_dict().values()])


def test_on_the_cpu_nothing_is_captured_or_fused() -> None:
    trainer = _trainer("cpu", cuda_graph=True)
    assert (trainer.cuda_graph, trainer.fused) == (False, False)
    trainer.run()
    assert trainer._graph is None and len(trainer.history) == 2


def test_host_draws_reach_the_cpu_unchanged() -> None:
    values = torch.arange(6)
    assert torch.equal(to_device(values, torch.device("cpu")), values)


def test_cuda_graph_must_be_a_bool() -> None:
    problems = TrainConfig(model="cifar_resnet20", dataset="synthetic", cuda_graph="yes").problems()  # type: ignore[arg-type]
    assert problems == ["cuda_graph: must be true or false, got 'yes'"]


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_graphed_run_is_the_eager_run(precision: str) -> None:
    eager = _trainer("cuda", cuda_graph=False, precision=precision)
    graphed = _trainer("cuda", cuda_graph=True, precision=precision)
    eager.run()
    graphed.run()
    assert graphed._graph is not None and eager._graph is None
    assert torch.equal(_weights(graphed), _weights(eager))
    assert [r.test_error for r in graphed.history] == [r.test_error for r in eager.history]
    assert [r.train_loss for r in graphed.history] == [r.train_loss for r in eager.history]


@CUDA
def test_a_graphed_run_resumes_exactly_on_the_gpu_and_on_the_cpu(tmp_path: Path) -> None:
    straight = _trainer("cuda", cuda_graph=True)
    straight.run()
    halfway = _trainer("cuda", cuda_graph=True, iterations=24)
    checkpoint = tmp_path / "half.pt"

    class Stop(Exception):
        pass

    def stop(report: object) -> None:
        halfway.save(checkpoint)
        raise Stop

    with pytest.raises(Stop):
        halfway.run(stop)
    resumed = _trainer("cuda", cuda_graph=True)
    resumed.resume(checkpoint)
    resumed.run()
    assert torch.equal(_weights(resumed), _weights(straight))
    on_cpu = _trainer("cpu", cuda_graph=True)  # a GPU checkpoint (fused SGD) continues on the CPU
    on_cpu.resume(checkpoint)
    on_cpu.run()
    assert on_cpu.iteration == 24 and not on_cpu.fused
