"""`reslab train`: one net with the paper's recipe, shortened to --iterations, resumable from its folder."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads in the command that needs it: `--help` answers at once
    from ..training import Report, TrainConfig


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train one net with the paper's recipe (shortened to --iterations)")
    p.add_argument("--model", required=True, help="registered model name, e.g. cifar_resnet20 (see `reslab models`)")
    p.add_argument("--dataset", choices=["cifar10", "imagenet", "synthetic"], help="default: from the model family")
    p.add_argument("--data-dir", help="folder with the CIFAR-10 batches or ImageNet train/ and val/")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-dir if missing")
    p.add_argument("--shortcut", help="shortcut option A, B or C (default: A for CIFAR, B for ImageNet)")
    p.add_argument("--depth", type=int, help="depth for the any-depth builders cifar_resnet / cifar_plain")
    p.add_argument("--iterations", type=int, help="SGD steps; milestones keep their fractions (default: the paper's)")
    p.add_argument("--eval-every", type=int, help="iterations between reports (default: ten reports)")
    p.add_argument("--batch-size", type=int, help="images per step (default: the paper's 128 / 256)")
    p.add_argument("--lr", type=float, help="base learning rate (default: the paper's 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batch order and augmentation")
    p.add_argument(
        "--validation",
        action="store_true",
        help="hold out 10%% of the training set (the paper's 45k/5k) and report its error beside the test error",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 autocast where the hardware has native bf16, else fp32",
    )
    p.add_argument(
        "--no-cuda-graph",
        dest="cuda_graph",
        action="store_false",
        help="on CUDA, run each step eagerly instead of replaying it as a captured graph",
    )
    p.add_argument("--out", type=Path, help="run folder: config.json, metrics.jsonl, checkpoint.pt")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print the final result as one JSON line on stdout")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from ..models import get_model_info
    from ..training import TrainConfig, paper_recipe

    family = get_model_info(args.model).family  # an unknown name raises listing the valid ones
    dataset = args.dataset or ("imagenet" if family == "imagenet" else "cifar10")
    recipe = paper_recipe(args.model, args.depth)
    if args.iterations is not None:
        recipe = recipe.scaled(args.iterations)
    overrides = {"batch_size": args.batch_size, "lr": args.lr}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(
        model=args.model,
        recipe=recipe,
        dataset=dataset,
        data_dir=args.data_dir,
        shortcut=args.shortcut,
        depth=args.depth,
        seed=args.seed,
        eval_every=args.eval_every,
        download=args.download,
        validation_fraction=0.1 if args.validation else None,
        device=args.device,
        precision=args.precision,
        cuda_graph=args.cuda_graph,
    )


def format_report(report: Report, iterations: int) -> str:
    """One progress line, errors in percent as the paper gives them."""
    return (
        f"iter {report.iteration:>7}/{iterations}  train err {100 * report.train_error:6.2f}%  "
        f"test err {100 * report.test_error:6.2f}%  train loss {report.train_loss:.4f}  "
        f"lr {report.lr:.4g}  {report.images_per_second:8.1f} img/s"
        + (f"  val err {100 * report.validation_error:6.2f}%" if report.validation_error is not None else "")
        + (f"  test top-5 {100 * report.test_error_top5:6.2f}%" if report.test_error_top5 is not None else "")
    )


RESUME_FIELDS = ("model", "shortcut", "depth", "dataset", "data_dir", "seed")  # what makes a run this run


def checked_resume(checkpoint: Path, config: TrainConfig) -> dict[str, Any]:
    """The checkpoint's state, once its config names the same net, data and seed as `config`; else one
    CheckpointError naming every difference (a ResNet-20-A checkpoint has the state-dict keys of plain-20, so
    loading alone would not notice)."""
    from ..models import get_model_info
    from ..training import CheckpointError
    from ..training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{checkpoint} carries no config; cannot tell which run it continues")

    def resolved(values: dict[str, Any]) -> dict[str, Any]:
        try:
            shortcut = get_model_info(values.get("model", "")).shortcut_for(values.get("shortcut"))
        except (KeyError, ValueError):
            shortcut = values.get("shortcut")
        folder = values.get("data_dir")
        data_dir = str(Path(folder).expanduser().resolve()) if folder else None
        return {**{k: values.get(k) for k in RESUME_FIELDS}, "shortcut": shortcut, "data_dir": data_dir}

    ours, theirs = resolved(config.to_dict()), resolved(saved)
    differences = [f"{k} {theirs[k]!r} there, {ours[k]!r} asked" for k in RESUME_FIELDS if ours[k] != theirs[k]]
    if differences:
        raise CheckpointError(
            f"{checkpoint} is another run: {'; '.join(differences)}. Resume with the same settings, or train "
            "into another --out"
        )
    return state


def run_train(args: argparse.Namespace) -> int:
    from ..training import CheckpointError, build_trainer
    from ..training.progress import TrainingProgress

    config = _train_config(args).validate()
    if args.out and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; name a folder for config.json, metrics.jsonl, checkpoint.pt")
    checkpoint = args.out / "checkpoint.pt" if args.out else None
    if args.resume and (checkpoint is None or not checkpoint.is_file()):
        raise CheckpointError(f"--resume needs a checkpoint at {checkpoint or '--out DIR/checkpoint.pt'}")
    state = checked_resume(checkpoint, config) if args.resume else None  # before building: a mismatch costs nothing
    trainer = build_trainer(config)
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError) as error:  # a checkpoint edited by hand: its weights fit no such net
            raise CheckpointError(f"{checkpoint} does not fit {config.model}: {str(error).splitlines()[0]}") from None
        print(f"resumed from {checkpoint} at iteration {trainer.iteration}", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    print(
        f"training {config.model} on {config.dataset} ({trainer.device}) for {config.recipe.iterations} iterations",
        file=sys.stderr,
    )

    progress = TrainingProgress(config.recipe.iterations, start=trainer.iteration)

    def on_report(report: Report) -> None:
        progress.write(format_report(report, config.recipe.iterations), test_error=report.test_error)
        if args.out:
            with (args.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(report.as_dict()) + "\n")
            trainer.save(checkpoint, config=config.to_dict())

    try:
        final = trainer.run(on_report, on_step=progress.step)
    finally:
        progress.close()
    if args.json and final is not None:
        print(json.dumps({**final.as_dict(), "iterations": final.iteration, "model": config.model}))
    return 0
