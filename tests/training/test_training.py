"""Recipes, the training loop, checkpoints and exact resumption."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from reslab.data import TensorData, synthetic_splits
from reslab.models import create_model
from reslab.training import (
    CheckpointError,
    Recipe,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    build_trainer,
    cifar_recipe,
    imagenet_recipe,
    load_checkpoint,
)

SPLITS = synthetic_splits(num_train=512, num_test=128)


def _trainer(recipe: Recipe, *, seed: int = 0, eval_every: int = 4, model: str = "cifar_resnet20") -> Trainer:
    torch.manual_seed(seed)
    data = TensorData(SPLITS, recipe.batch_size, seed=seed)
    return Trainer(create_model(model), data, recipe, eval_every=eval_every)


SHORT = Recipe(batch_size=32, iterations=8, milestones=(4, 6))


def test_paper_recipes() -> None:
    cifar = cifar_recipe(56)
    assert (cifar.batch_size, cifar.lr, cifar.momentum, cifar.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (cifar.iterations, cifar.milestones, cifar.warmup_lr) == (64_000, (32_000, 48_000), None)
    assert cifar_recipe(110).warmup_lr == 0.01 and cifar_recipe(1202).warmup_until_error == 0.8
    imagenet = imagenet_recipe()
    assert (imagenet.batch_size, imagenet.iterations, imagenet.lr) == (256, 600_000, 0.1)


def test_scaled_recipe_keeps_milestones_at_the_same_fractions() -> None:
    short = cifar_recipe(20).scaled(6400)
    assert short.iterations == 6400 and short.milestones == (3200, 4800)
    assert [short.lr_at(i) for i in (0, 3199, 3200, 4799, 4800)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert cifar_recipe(110).lr_at(0, warming_up=True) == 0.01


def test_recipe_validation_lists_every_bad_field() -> None:
    bad = Recipe(batch_size=0, lr=-1, momentum=1.5, milestones=(5, 2))
    with pytest.raises(ValueError) as error:
        bad.validate()
    for field in ("recipe.batch_size", "recipe.lr", "recipe.momentum", "recipe.milestones"):
        assert field in str(error.value)
    assert Recipe.from_dict(cifar_recipe(110).to_dict()) == cifar_recipe(110)
    with pytest.raises(ValueError, match="unknown recipe fields"):
        Recipe.from_dict({"learning_rate": 0.1})


def test_reports_every_k_iterations_and_at_the_end() -> None:
    reports = []
    trainer = _trainer(replace(SHORT, iterations=10), eval_every=4)
    final = trainer.run(reports.append)
    assert [r.iteration for r in reports] == [4, 8, 10]
    assert final == reports[-1] == trainer.history[-1]
    for r in reports:
        assert 0 <= r.train_error <= 1 and 0 <= r.test_error <= 1
        assert r.train_loss > 0 and r.test_loss > 0 and r.images_per_second > 0
    assert [r.lr for r in reports] == pytest.approx([0.1, 0.001, 0.001])  # lr of the last step; milestones 4, 6
    assert all(r.validation_error is None for r in reports)  # nothing held out: no validation number


def test_top5_error_is_measured_in_training_and_testing_and_matches_a_direct_count() -> None:
    """With `top5`, each report carries the top-5 error of its training steps and of the test set: never above
    the top-1 error, and on the test set equal to a direct count of labels outside each image's 5 best scores."""
    splits = synthetic_splits(num_train=256, num_test=96, num_classes=20)
    data = TensorData(splits, 32, seed=0)
    trainer = Trainer(create_model("cifar_resnet", depth=8, num_classes=20), data, SHORT, eval_every=4, top5=True)
    reports = []
    trainer.run(reports.append)
    for report in reports:
        assert 0 <= report.train_error_top5 <= report.train_error and 0 <= report.test_error_top5 <= report.test_error
    trainer.model.eval()
    with torch.no_grad():
        scores = torch.cat([trainer.model(images) for images, _ in data.test_batches()])
    labels = torch.cat([labels for _, labels in data.test_batches()])
    counted = sum(label not in row.topk(5).indices for row, label in zip(scores, labels, strict=True)) / len(labels)
    assert reports[-1].test_error_top5 == pytest.approx(float(counted))
    assert reports[-1].test_error_top5 < reports[-1].test_error  # 20 classes: top-5 is the easier measure
    plain = _trainer(replace(SHORT, iterations=4), eval_every=4).run()
    assert plain.train_error_top5 is None and plain.test_error_top5 is None  # CIFAR: top-1 only, as the paper


def test_a_held_out_validation_set_is_reported_beside_the_test_set() -> None:
    """With a validation split the report carries both errors, each measured on its own set: the validation
    error equals an evaluation of the held-out images, the test error one of the test set."""
    config = TrainConfig("cifar_resnet", depth=8, dataset="synthetic", recipe=SHORT, validation_fraction=0.1)
    trainer = build_trainer(config)
    final = trainer.run()
    assert final.validation_error is not None and 0 <= final.validation_error <= 1
    assert len(trainer.data.validation_labels) + len(trainer.data.labels) == len(synthetic_splits().train)
    assert (final.validation_error, final.validation_loss) == trainer.evaluate(trainer.data.validation_batches())[:2]
    assert (final.test_error, final.test_loss) == trainer.evaluate()[:2]
    with pytest.raises(ValueError, match="ImageNet runs have no hold-out"):
        TrainConfig("resnet18", dataset="imagenet", data_dir="x", validation_fraction=0.1).validate()


def test_learns_the_synthetic_task() -> None:
    final = _trainer(Recipe(batch_size=64, iterations=60, milestones=(45,)), eval_every=60).run()
    assert final.test_error < 0.3  # chance is 0.9


class Interrupted(Exception):
    pass


def test_resuming_reproduces_the_uninterrupted_run_exactly(tmp_path: Path) -> None:
    straight = _trainer(SHORT)
    straight.run()

    def save_then_die(report) -> None:
        if report.iteration == 4:
            interrupted.save(tmp_path / "ckpt.pt")
            raise Interrupted

    interrupted = _trainer(SHORT)
    with pytest.raises(Interrupted):
        interrupted.run(save_then_die)
    resumed = _trainer(SHORT)
    with torch.no_grad():  # a different starting point: everything must come from the checkpoint
        for p in resumed.model.parameters():
            p.add_(1.0)
    resumed.resume(tmp_path / "ckpt.pt")
    assert resumed.iteration == 4
    resumed.run()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in straight.history]
    assert [r.test_error for r in resumed.history] == [r.test_error for r in straight.history]


def test_warmup_holds_the_low_lr_until_training_error_drops() -> None:
    warm = _trainer(Recipe(batch_size=32, iterations=60, milestones=(), warmup_lr=0.01, warmup_until_error=0.85))
    warm.run()
    assert not warm.warming_up and warm.history[-1].lr == 0.1
    stuck = _trainer(Recipe(batch_size=32, iterations=24, milestones=(), warmup_lr=0.01, warmup_until_error=0.001))
    stuck.run()
    assert stuck.warming_up and all(r.lr == 0.01 for r in stuck.history)


def test_a_diverging_run_raises_with_the_iteration() -> None:
    with pytest.raises(TrainingDiverged, match="by iteration 4"):
        _trainer(Recipe(batch_size=32, iterations=8, lr=1e12, milestones=()), eval_every=4).run()


def test_checkpoint_is_atomic_and_broken_files_give_one_clear_error(tmp_path: Path) -> None:
    trainer = _trainer(SHORT)
    path = trainer.save(tmp_path / "run" / "checkpoint.pt", config={"model": "cifar_resnet20"})
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    assert load_checkpoint(path)["config"] == {"model": "cifar_resnet20"}
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is unreadable"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a reslab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_loading_refuses_pickled_code(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"format": 1, "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path: Path) -> None:
    path = _trainer(SHORT).save(tmp_path / "ckpt.pt")
    other = _trainer(replace(SHORT, lr=0.05))
    with pytest.raises(ValueError, match="checkpoint was made with recipe"):
        other.resume(path)


def test_config_validation_reports_every_bad_field_before_building() -> None:
    config = TrainConfig("resnet18", dataset="cifar10", shortcut="D", normalization="zca", eval_every=0)
    with pytest.raises(ValueError) as error:
        build_trainer(config)
    message = str(error.value)
    for needle in ("dataset: resnet18 is a imagenet net", "data_dir:", "shortcut: 'D'", "normalization:", "eval_every"):
        assert needle in message
    with pytest.raises(ValueError, match="valid models"):
        TrainConfig("resnet35").validate()
    with pytest.raises(ValueError, match="6n"):
        TrainConfig("cifar_resnet", depth=30, dataset="synthetic").validate()
    config = TrainConfig("cifar_resnet", depth=8, dataset="synthetic", recipe=SHORT)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert build_trainer(config).run().iteration == 8


def test_fp32_and_bf16_precisions_both_train() -> None:
    for precision in ("fp32", "bf16"):
        config = TrainConfig("cifar_resnet20", dataset="synthetic", recipe=SHORT, precision=precision)
        final = build_trainer(config).run()
        assert math.isfinite(final.train_loss)
    with pytest.raises(ValueError, match="precision: unknown 'fp8'"):
        TrainConfig("cifar_resnet20", dataset="synthetic", precision="fp8").validate()


@pytest.mark.slow
def test_a_short_real_cifar_run_is_clearly_better_than_chance(cifar_subset: Path) -> None:
    config = TrainConfig(
        "cifar_resnet20", recipe=cifar_recipe(20).scaled(200), data_dir=str(cifar_subset), eval_every=200
    )
    final = build_trainer(config).run()
    assert final.test_error < 0.70  # chance is 0.90 on the real test images
    assert final.train_error < 0.75


def test_layer_responses_measure_every_3x3_layer_after_bn() -> None:
    from reslab.training.responses import layer_responses, response_layers

    cifar, imagenet = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 224, 224)
    assert len(response_layers(create_model("cifar_resnet20"), cifar)) == 19  # stem + 2 per block x 9 blocks
    assert len(response_layers(create_model("cifar_plain110"), cifar)) == 109
    assert len(response_layers(create_model("resnet50"), imagenet)) == 16  # one 3x3 per bottleneck; not the 7x7
    torch.manual_seed(0)
    model = create_model("cifar_resnet20").eval()
    data = TensorData(SPLITS, 32, seed=0, test_batch_size=50)
    seen = []
    handle = (
        model.stages[1][0].residual[1].register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    )  # before the in-place ReLU
    stds = layer_responses(model, data.test_batches())
    handle.remove()
    # stem is layer 1, stage 1 has 3 blocks x 2 layers (2..7): stage 2's first BN is layer 8
    assert stds[7] == pytest.approx(torch.cat(seen).double().std(unbiased=False).item(), rel=1e-6)
    with torch.no_grad():
        model.stages[2][2].residual[4].weight.zero_()
        model.stages[2][2].residual[4].bias.zero_()
    assert layer_responses(model, data.test_batches())[-1] == 0.0  # gamma = beta = 0: a silent layer


class _Block(nn.Module):
    """A block that declares its layers in another order than it runs them; pre-activation on request."""

    def __init__(self, pre_activation: bool) -> None:
        super().__init__()
        self.pre_activation = pre_activation
        self.bn2, self.bn1 = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
        self.conv2, self.conv1 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_activation:  # BN -> ReLU -> conv: the second conv's output goes to the addition
            return x + self.conv2(torch.relu(self.bn2(self.conv1(torch.relu(self.bn1(x))))))
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def test_fig7s_layers_are_the_bns_that_take_a_3x3_output_and_a_pre_activation_net_is_refused() -> None:
    from reslab.training.responses import layer_responses, response_layers

    net, images = nn.Sequential(_Block(False), _Block(False)), torch.randn(2, 4, 8, 8)
    found = response_layers(net, images)
    assert found == [net[0].bn1, net[0].bn2, net[1].bn1, net[1].bn2]  # the order they run, not declared
    with pytest.raises(ValueError, match="2 of its 4 3x3 convolutions feed a BN directly"):
        response_layers(nn.Sequential(_Block(True), _Block(True)), images)
    with pytest.raises(ValueError, match="2 of its 4"):
        layer_responses(nn.Sequential(_Block(True), _Block(True)), [(images, None)])
    # a data-parallel trial's net has SyncBatchNorm, which is no BatchNorm2d: its layers are found all the same
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(create_model("cifar_resnet20")).eval()
    assert len(response_layers(synced, torch.zeros(1, 3, 32, 32))) == 19
    assert layer_responses(create_model("cifar_resnet20"), []) == []  # no test images (a worker's empty share)


def test_data_parallel_needs_a_batch_the_workers_can_split() -> None:
    config = TrainConfig("cifar_resnet20", dataset="synthetic", recipe=replace(SHORT, batch_size=30), data_parallel=4)
    with pytest.raises(ValueError, match="data_parallel: 4 workers cannot split batch 30"):
        config.validate()
    with pytest.raises(ValueError, match="data_parallel=2 but this process is in a group of 1"):
        build_trainer(replace(config, data_parallel=2))


def test_a_shard_takes_every_nth_item_of_the_global_batch() -> None:
    from reslab.distributed import Shard

    data = [TensorData(SPLITS, 32, seed=0, shard=Shard(rank, 2)) for rank in (0, 1)]
    whole = TensorData(SPLITS, 32, seed=0)
    x, y = whole.train_batch(5)
    (x0, y0), (x1, y1) = (d.train_batch(5) for d in data)
    assert (
        torch.equal(x0, x[0::2])
        and torch.equal(x1, x[1::2])
        and torch.equal(torch.cat([y0, y1]).sort()[0], y.sort()[0])
    )
    test_counts = [sum(len(labels) for _, labels in d.test_batches()) for d in data]
    assert sum(test_counts) == 128


def test_recipe_fields_of_the_wrong_type_are_named() -> None:
    with pytest.raises(ValueError, match=r"recipe\.lr: must be a number, got '0\.1'"):
        Recipe(lr="0.1").validate()
    with pytest.raises(ValueError, match=r"recipe\.milestones: must be a number"):
        Recipe(milestones=("32k",)).validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="about a node where torch finds no usable CUDA")
def test_a_trial_holding_a_gpu_torch_cannot_use_fails_naming_versions_unless_cpu_fallback_is_allowed() -> None:
    from reslab.training.cuda import CudaUnavailable, check_gpu_usable

    assert check_gpu_usable([], allow_cpu_fallback=False) is None  # a CPU trial: nothing to check
    assert check_gpu_usable(["0"], allow_cpu_fallback=True) == "cpu"
    with pytest.raises(CudaUnavailable) as refused:
        check_gpu_usable(["0"], allow_cpu_fallback=False)
    message = str(refused.value)
    assert message.startswith(f"this trial holds GPU 0 but torch {torch.__version__}")
    assert "NVIDIA driver" in message and "pytorch.org/get-started" in message and "--allow-cpu-fallback" in message


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected", "why"),
    [
        (False, False, None, "auto: fp32 (this CPU has neither AMX nor AVX512-BF16"),
        (False, True, None, "AVX512-BF16 but no AMX: bf16 training measured slower"),
        (True, False, torch.bfloat16, "AMX tiles"),
        (True, True, torch.bfloat16, "AMX tiles"),
    ],
)
def test_auto_precision_takes_bf16_on_a_cpu_only_where_it_is_faster(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, expected: torch.dtype | None, why: str
) -> None:
    from reslab.training.loop import precision_choice

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    dtype, reason = precision_choice("auto", torch.device("cpu"))
    assert dtype == expected and why in reason
    assert precision_choice("bf16", torch.device("cpu"))[0] == torch.bfloat16  # asked for: taken, even emulated
    assert precision_choice("fp32", torch.device("cpu"))[0] is None


def test_auto_precision_follows_this_machines_cpu_flags() -> None:
    """What the kernel reports for this CPU (lscpu's flags) decides `auto`, not oneDNN's emulation."""
    from reslab.training.loop import precision_choice

    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert (precision_choice("auto", torch.device("cpu"))[0] == torch.bfloat16) == ("amx_tile" in flags)
