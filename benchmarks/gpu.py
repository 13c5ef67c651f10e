"""reslab's training core on a GPU, bare on torch (no Ray, no MLflow): correctness checks and speed, in one run.

    python benchmarks/gpu.py --cifar DIR [--out DIR] [--quick]

Sections, each timed and each failure reported without stopping the others:
  env       the device, torch, and its measured bf16 matrix rate (the ceiling the speed table is a share of)
  learn     ResNet-20 on the real CIFAR-10 (subset) folder in bf16 and fp32, three seeds each
  resume    a run stopped halfway and resumed against the same run straight through (and run twice)
  tencrop   the ImageNet pipeline's 10-crop final test on a generated JPEG folder, on the GPU
  speed     img/s of ResNet-20/56/110 (batch 128) and ResNet-50 (batch 256, 224x224 resident): the loop as
            it was (eager, foreach SGD, blocking copies) against eager + fused + async copies and the CUDA
            graph; torch.compile on ResNet-20; share of the bf16 matrix rate (multiply-adds x 2 x 3 x img/s)
  profile   torch.profiler of 20 eager ResNet-20 steps: GPU busy time against wall time
  packing   1, 4 x 0.25, 2 x 0.5 and 1 x 1 GPU-share trial processes at once on the GPU: img/s, peak memory

Writes results.json (and profile.txt) to --out; prints a table per section.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch

from reslab.data import TensorData, synthetic_splits
from reslab.data import stream as stream_module
from reslab.models import ModelSpec
from reslab.training import Recipe, TrainConfig, Trainer, build_trainer, cifar_recipe

RESULTS: dict[str, Any] = {}
CUDA = torch.cuda.is_available()
STARTED = time.perf_counter()


def log(*parts: object) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f}s]", *parts, flush=True)


def section(name: str, body: Callable[[], Any]) -> None:
    begun = time.perf_counter()
    log(f"== {name}")
    try:
        RESULTS[name] = body()
    except Exception as error:  # every section runs; a failure is a result
        RESULTS[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        log(f"{name} FAILED: {type(error).__name__}: {error}")
        traceback.print_exc()
    RESULTS.setdefault("seconds", {})[name] = round(time.perf_counter() - begun, 1)
    log(f"== {name} done in {time.perf_counter() - begun:.1f}s")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---- env -------------------------------------------------------------------------------------------------


def matmul_tflops(size: int = 8192, repeats: int = 10) -> float:
    """The bf16 matrix-product rate on random data, the ceiling the speed table is a share of."""
    target = device()
    if target.type != "cuda":
        size = 512
    a = torch.randn(size, size, device=target, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=target, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    begun = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * size**3 * repeats / (time.perf_counter() - begun) / 1e12


def env() -> dict[str, Any]:
    found: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        found |= {
            "device": properties.name,
            "multiprocessors": properties.multi_processor_count,
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "cudnn": torch.backends.cudnn.version(),
        }
    found["bf16_matmul_tflops"] = round(matmul_tflops(), 1)
    log(found)
    return found


# ---- learn -----------------------------------------------------------------------------------------------


def subset_config(data_dir: str, seed: int, precision: str, iterations: int, **extra: Any) -> TrainConfig:
    """ResNet-20 with the paper's CIFAR recipe shortened to `iterations` (decays at 50 % and 75 %)."""
    recipe = dataclasses.replace(
        cifar_recipe(20), iterations=iterations, milestones=(iterations // 2, iterations * 3 // 4)
    )
    return TrainConfig(
        model="cifar_resnet20", recipe=recipe, data_dir=data_dir, seed=seed, precision=precision,
        eval_every=iterations, **extra,
    )  # fmt: skip


def learn(data_dir: str, iterations: int, seeds: int) -> list[dict[str, Any]]:
    rows = []
    for precision in ("bf16", "fp32"):
        for seed in range(seeds):
            begun = time.perf_counter()
            trainer = build_trainer(subset_config(data_dir, seed, precision, iterations))
            final = trainer.run()
            assert final is not None
            row = {
                "precision": precision, "seed": seed, "iterations": iterations,
                "train_error": round(100 * final.train_error, 2), "test_error": round(100 * final.test_error, 2),
                "img_s": round(final.images_per_second), "graph": trainer.cuda_graph,
                "seconds": round(time.perf_counter() - begun, 1),
            }  # fmt: skip
            log(row)
            rows.append(row)
    return rows


# ---- resume ----------------------------------------------------------------------------------------------


class Stop(Exception):
    """Raised from a report callback to stop a run halfway, as a killed trial stops."""


def flat_parameters(trainer: Trainer) -> torch.Tensor:
    state = trainer.model.state_dict()
    return torch.cat([value.detach().double().flatten().cpu() for value in state.values()])


def resume(data_dir: str, iterations: int) -> list[dict[str, Any]]:
    rows = []
    for precision, graph, deterministic in (("bf16", True, False), ("bf16", False, False), ("fp32", True, False),
                                            ("fp32", False, False), ("bf16", True, True)):  # fmt: skip
        torch.backends.cudnn.deterministic = deterministic
        config = subset_config(data_dir, 0, precision, iterations, cuda_graph=graph)
        config = dataclasses.replace(config, eval_every=iterations // 2)
        straight = build_trainer(config)
        straight.run()
        again = build_trainer(config)
        again.run()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "half.pt"
            first = build_trainer(config)

            def stop_halfway(report: Any, trainer: Trainer = first, path: Path = path) -> None:
                if report.iteration == iterations // 2:
                    trainer.save(path)
                    raise Stop

            with contextlib.suppress(Stop):
                first.run(stop_halfway)
            resumed = build_trainer(config)
            resumed.resume(path)
            resumed.run()
        reference = flat_parameters(straight)
        row = {
            "precision": precision, "graph": graph, "cudnn_deterministic": deterministic, "iterations": iterations,
            "max_diff_run_twice": float((flat_parameters(again) - reference).abs().max()),
            "max_diff_resumed": float((flat_parameters(resumed) - reference).abs().max()),
            "test_error": [round(100 * t.history[-1].test_error, 2) for t in (straight, again, resumed)],
        }  # fmt: skip
        log(row)
        rows.append(row)
    torch.backends.cudnn.deterministic = False
    # the graph replays what the eager step computes: the same run both ways
    eager = build_trainer(dataclasses.replace(subset_config(data_dir, 0, "fp32", iterations), cuda_graph=False))
    eager.run()
    graphed = build_trainer(subset_config(data_dir, 0, "fp32", iterations))
    graphed.run()
    rows.append(
        {"graph_vs_eager_fp32_max_diff": float((flat_parameters(eager) - flat_parameters(graphed)).abs().max())}
    )
    log(rows[-1])
    return rows


# ---- tencrop ---------------------------------------------------------------------------------------------


def jpeg_folder(root: Path, classes: int = 3, train: int = 8, val: int = 4) -> Path:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", train), ("val", val)):
        for label in range(classes):
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                shape = (3, 300 + 40 * (number % 2), 260)
                pixels = (torch.rand(shape, generator=generator) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
                Image.fromarray(pixels).save(folder / f"{number}.JPEG", quality=90)
    return root


def tencrop() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = jpeg_folder(Path(folder))
        recipe = Recipe(batch_size=8, iterations=4, milestones=(), lr=0.01)
        config = TrainConfig(
            model="resnet18", dataset="imagenet", data_dir=str(root), recipe=recipe, workers=2,
            ten_crop=True, multiscale=True, eval_every=4,
        )  # fmt: skip
        trainer = build_trainer(config)
        final = trainer.run()
        assert final is not None
        found = {
            "device": str(trainer.device), "graph": trainer.cuda_graph,
            "test_error": final.test_error, "test_error_10crop": final.test_error_10crop,
            "test_error_multiscale": final.test_error_multiscale,
        }  # fmt: skip
        log(found)
        if final.test_error_10crop is None or final.test_error_multiscale is None:
            raise AssertionError(f"no 10-crop or multi-scale final test: {found}")
        return found


# ---- speed -----------------------------------------------------------------------------------------------


def speed_trainer(model: str, batch: int, precision: str, graph: bool, image_size: int = 32) -> Trainer:
    spec = ModelSpec.of({"model": model})
    count = max(10 * batch, 2560) if image_size == 32 else 10 * batch
    splits = synthetic_splits(num_train=count, num_test=1, image_size=image_size, num_classes=10)
    torch.manual_seed(0)
    data = TensorData(splits, batch, seed=0, device=device())
    recipe = Recipe(batch_size=batch, iterations=10**9, milestones=())
    return Trainer(spec.build(num_classes=10), data, recipe, device=device(), precision=precision, cuda_graph=graph)


def timed_steps(trainer: Trainer, warmup: int, steps: int) -> float:
    """Images/s of `steps` training steps (batch and step as `Trainer.run` takes them), after `warmup`."""
    total = torch.zeros((), device=trainer.device)

    def step() -> None:
        nonlocal total
        images, labels = trainer.data.train_batch(trainer.iteration)
        loss, _errors = trainer.train_step(images, labels)
        total += loss
        trainer.iteration += 1

    for _ in range(warmup):
        step()
    sync()
    begun = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * trainer.data.batch_size / (time.perf_counter() - begun)


def as_before(trainer: Trainer) -> Trainer:
    """The loop as it was before the GPU pass: eager, foreach SGD, blocking host-to-device copies."""
    trainer.cuda_graph = False
    for group in trainer.optimizer.param_groups:
        group["fused"] = None
    return trainer


class BlockingCopies:
    """The augmentation's random draws copied to the GPU as before: blocking, from pageable memory."""

    def __enter__(self) -> None:
        self.saved = stream_module.to_device
        stream_module.to_device = lambda values, target: values.to(target)

    def __exit__(self, *_: object) -> None:
        stream_module.to_device = self.saved


def speed(tflops: float, quick: bool) -> list[dict[str, Any]]:
    rows = []
    cases = [("cifar_resnet20", 128, 32, 300), ("cifar_resnet56", 128, 32, 150), ("cifar_resnet110", 128, 32, 80)]
    cases.append(("resnet50", 256, 224, 40))
    warmup = 2 if quick else 10
    for model, batch, size, steps in cases:
        steps, batch = (2, 32 if size == 32 else 8) if quick else (steps, batch)
        macs = ModelSpec.of({"model": model}).multiply_adds((3, size, size))
        # (name, precision, graphed, blocking copies as before)
        variants = [("before", "bf16", False, True), ("eager", "bf16", False, False), ("graph", "bf16", True, False),
                    ("graph fp32", "fp32", True, False), ("graph cudnn.benchmark", "bf16", True, False),
                    ("graph cudnn.deterministic", "bf16", True, False)]  # fmt: skip
        baseline = None
        for name, precision, graph, blocking in variants:
            torch.backends.cudnn.benchmark = name.endswith("benchmark")
            torch.backends.cudnn.deterministic = name.endswith("deterministic")
            try:
                with BlockingCopies() if blocking else contextlib.nullcontext():
                    trainer = speed_trainer(model, batch, precision, graph, size)
                    rate = timed_steps(as_before(trainer) if blocking else trainer, warmup, steps)
            except Exception as error:
                log(f"{model} {name} FAILED: {type(error).__name__}: {error}")
                traceback.print_exc()
                rows.append({"model": model, "variant": name, "error": f"{type(error).__name__}: {error}"})
                continue
            baseline = baseline or rate
            row = {
                "model": model, "batch": batch, "variant": name, "img_s": round(rate),
                "ratio_to_before": round(rate / baseline, 2),
                "share_of_bf16_matmul": round(macs * 6 * rate / (tflops * 1e12), 3),
                "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20) if CUDA else None,
            }  # fmt: skip
            log(row)
            rows.append(row)
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
    torch.backends.cudnn.benchmark = torch.backends.cudnn.deterministic = False
    for model, batch, size, steps in (("cifar_resnet20", 128, 32, 300),):
        begun = time.perf_counter()
        try:
            trainer = speed_trainer(model, batch, "bf16", True, size)
            trainer.model = torch.compile(trainer.model)  # type: ignore[assignment]
            rate = timed_steps(trainer, warmup, 2 if quick else steps)
            row = {"model": model, "variant": "compile + graph", "img_s": round(rate),
                   "compile_seconds": round(time.perf_counter() - begun, 1)}  # fmt: skip
        except Exception as error:
            traceback.print_exc()
            row = {"model": model, "variant": "compile + graph", "error": f"{type(error).__name__}: {error}"}
        log(row)
        rows.append(row)
    return rows


# ---- profile ---------------------------------------------------------------------------------------------


def profile(out: Path) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    found = {}
    for name, graph in (("eager", False), ("graph", True)):
        trainer = speed_trainer("cifar_resnet20", 128, "bf16", graph)
        timed_steps(trainer, 3, 2)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        sync()
        begun = time.perf_counter()
        with profiler(activities=activities) as recorded:
            timed_steps(trainer, 0, 20)
        wall = time.perf_counter() - begun
        events = recorded.key_averages()
        table = events.table(sort_by="self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total",
                             row_limit=25)  # fmt: skip
        (out / f"profile-{name}.txt").write_text(table)
        gpu_us = sum(e.self_device_time_total for e in events) if torch.cuda.is_available() else 0.0
        kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
        found[name] = {"wall_ms_per_step": round(1000 * wall / 20, 3), "gpu_ms_per_step": round(gpu_us / 1000 / 20, 3),
                       "kernels_per_step": round(kernels / 20)}  # fmt: skip
        log(name, found[name])
    return found


# ---- packing ---------------------------------------------------------------------------------------------


def worker(model: str, batch: int, size: int, start_at: float, seconds: float, share: float, out: Path) -> None:
    """One trial process of a packed GPU: warm up, wait for the common start, train for `seconds`."""
    if torch.cuda.is_available() and share < 1:
        torch.cuda.set_per_process_memory_fraction(share)  # a share's memory is its share of the card
    trainer = speed_trainer(model, batch, "bf16", True, size)
    timed_steps(trainer, 2 if batch < 128 else 10, 0)
    time.sleep(max(0.0, start_at - time.time()))
    sync()
    begun, steps = time.perf_counter(), 0
    while time.perf_counter() - begun < seconds:
        timed_steps(trainer, 0, 20)
        steps += 20
    rate = steps * batch / (time.perf_counter() - begun)
    memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    out.write_text(json.dumps({"img_s": rate, "peak_memory_mib": memory, "late": time.time() - start_at > 5}))


def packing(out: Path, quick: bool) -> list[dict[str, Any]]:
    rows = []
    groups = [("cifar_resnet20", 128, 32, 1, 1.0), ("cifar_resnet20", 128, 32, 4, 0.25),
              ("cifar_resnet110", 128, 32, 2, 0.5), ("resnet50", 256, 224, 1, 1.0)]  # fmt: skip
    seconds = 2.0 if quick else 6.0
    if quick:  # the script checked on a CPU: small batches
        groups = [(model, 32 if size == 32 else 8, size, count, share) for model, _, size, count, share in groups]
    single = None
    for model, batch, size, count, share in groups:
        start_at = time.time() + 30
        files = [out / f"pack-{model}-{count}-{n}.json" for n in range(count)]
        command = [sys.executable, __file__, "--worker", *map(str, (model, batch, size, start_at, seconds, share))]
        processes = [subprocess.Popen([*command, str(file)]) for file in files]
        codes = [p.wait(timeout=240) for p in processes]
        found = [json.loads(f.read_text()) for f in files if f.exists()]
        for f in files:
            f.unlink(missing_ok=True)
        total = sum(r["img_s"] for r in found)
        if model == "cifar_resnet20" and count == 1:
            single = total
        row = {
            "model": model, "processes": count, "share": share, "exit_codes": codes,
            "aggregate_img_s": round(total), "per_process_img_s": [round(r["img_s"]) for r in found],
            "peak_memory_mib": [round(r["peak_memory_mib"]) for r in found],
            "any_late": any(r["late"] for r in found),
            "ratio_to_one": round(total / single, 2) if single and model == "cifar_resnet20" else None,
        }  # fmt: skip
        log(row)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cifar", help="the CIFAR-10 folder (cifar-10-batches-py files), e.g. a subset")
    parser.add_argument("--out", default="gpu-results", help="folder for results.json and the profiles")
    parser.add_argument("--quick", action="store_true", help="a few steps of each, to check the script itself")
    parser.add_argument("--sections", default="env,learn,resume,tencrop,speed,profile,packing")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, batch, size, start_at, seconds, share, file = args.worker
        worker(model, int(batch), int(size), float(start_at), float(seconds), float(share), Path(file))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = False  # reslab's default: cuDNN's heuristics, the same algorithm each run
    chosen = args.sections.split(",")
    iterations, seeds = (40, 1) if args.quick else (1000, 3)
    if "env" in chosen:
        section("env", env)
    tflops = (RESULTS.get("env") or {}).get("bf16_matmul_tflops") or matmul_tflops()
    for name, body in {
        "learn": lambda: learn(args.cifar, iterations, seeds),
        "resume": lambda: resume(args.cifar, 40 if args.quick else 200),
        "tencrop": tencrop,
        "speed": lambda: speed(tflops, args.quick),
        "profile": lambda: profile(out),
        "packing": lambda: packing(out, args.quick),
    }.items():
        if name in chosen:
            section(name, body)
        (out / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    log("all done;", json.dumps(RESULTS.get("seconds")))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
