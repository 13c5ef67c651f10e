"""The ImageNet pipeline on a tiny folder of real JPEG files the test writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reslab.data import DatasetNotFoundError, ImageFolderData
from reslab.data.imagenet import EpochBatchSampler, PCALighting, eval_transform, train_transform
from reslab.models import create_model
from reslab.training import Recipe, Trainer


def test_train_transform_scales_crops_and_normalises(tiny_imagenet: Path) -> None:
    from PIL import Image

    image = Image.open(next((tiny_imagenet / "train").rglob("*.JPEG")))
    torch.manual_seed(0)
    out = train_transform()(image)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert -3 < out.mean() < 3
    assert not torch.equal(out, train_transform()(image))  # random scale / crop / flip / lighting


def test_ten_crop_gives_ten_views(tiny_imagenet: Path) -> None:
    from PIL import Image

    image = Image.open(next((tiny_imagenet / "val").rglob("*.JPEG")))
    crops = eval_transform(ten_crop=True)(image)
    assert crops.shape == (10, 3, 224, 224)
    assert torch.allclose(crops[4], eval_transform()(image), atol=1e-5)  # the centre crop is one of them
    assert torch.allclose(crops[9], crops[4].flip(-1), atol=1e-5)  # the second five come from the mirror image


def test_pca_lighting_shifts_each_channel_by_a_constant() -> None:
    image = torch.rand(3, 8, 8)
    torch.manual_seed(0)
    shifted = PCALighting(0.1)(image)
    delta = shifted - image
    assert delta.abs().sum() > 0
    assert torch.allclose(delta, delta[:, :1, :1].expand_as(delta), atol=1e-6)


def test_sampler_resumes_in_the_same_order() -> None:
    straight = EpochBatchSampler(10, 3, seed=1)
    batches = [b for _, b in zip(range(7), straight, strict=False)]
    resumed = [b for _, b in zip(range(3), EpochBatchSampler(10, 3, seed=1, start_iteration=4), strict=False)]
    assert resumed == batches[4:7]
    first_epoch = [i for batch in batches[:3] for i in batch]
    assert len(first_epoch) == len(set(first_epoch)) == 9  # no repeats within an epoch


def test_trains_and_evaluates_with_ten_crops(tiny_imagenet: Path) -> None:
    data = ImageFolderData(tiny_imagenet, 4, seed=0, workers=0, ten_crop=True, test_batch_size=2)
    images, labels = data.train_batch(0)
    assert images.shape == (4, 3, 224, 224) and labels.tolist() != []
    assert next(iter(data.test_batches()))[0].shape == (2, 3, 224, 224)  # curves: the centre crop
    assert next(iter(data.final_evaluations()["10crop"]))[0].shape == (2, 10, 3, 224, 224)  # once, at the end
    torch.manual_seed(0)
    trainer = Trainer(create_model("resnet18", num_classes=2), data, Recipe(batch_size=4, iterations=2, milestones=()))
    reports = []
    trainer.run(reports.append)
    assert [r.iteration for r in reports] == [1, 2] and reports[0].test_error_10crop is None
    final = reports[-1]
    assert 0.0 <= final.test_error <= 1.0 and final.test_loss > 0 and 0.0 <= final.test_error_10crop <= 1.0
    assert final.test_error_10crop == trainer.evaluate(data.final_evaluations()["10crop"]).error


def test_an_imagenet_run_reports_top5_and_the_ten_crop_and_multiscale_finals(tmp_path: Path) -> None:
    """An ImageNet config measures top-5 beside top-1 in training and testing (seven classes: top-5 misses only
    what is outside five of seven), and at the end the 10-crop test and Table 4's fully-convolutional
    multi-scale test (the whole image with its shorter side at 224, 256, 384, 480 and 640)."""
    import numpy as np
    from PIL import Image

    from reslab.training import TrainConfig, build_trainer

    rng = np.random.default_rng(1)
    for split, count in (("train", 1), ("val", 1)):
        for index in range(7):
            folder = tmp_path / split / f"n0000000{index}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (240, 260, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}_{i}.JPEG", quality=90)
    recipe = Recipe(batch_size=7, iterations=2, milestones=())
    config = TrainConfig(
        "resnet18", recipe=recipe, dataset="imagenet", data_dir=str(tmp_path), ten_crop=True, eval_every=2,
        multiscale=True,
    )  # fmt: skip
    trainer = build_trainer(replace(config, workers=0))
    scales, label = next(iter(trainer.data.final_evaluations()["multiscale"]))
    assert [min(x.shape[-2:]) for x in scales] == [224, 256, 384, 480, 640] and label.shape == (1,)
    assert scales[-1].shape[-2:] == (640, 693)  # the whole 240x260 image, aspect kept: no crop
    report = trainer.run()
    assert 0 <= report.test_error_multiscale_top5 <= report.test_error_multiscale <= 1
    assert report.train_error_top5 is not None and 0 <= report.train_error_top5 <= report.train_error
    assert report.test_error_top5 is not None and 0 <= report.test_error_top5 <= report.test_error
    assert report.test_error_10crop_top5 is not None and 0 <= report.test_error_10crop_top5 <= report.test_error_10crop


def test_missing_split_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=f"{tmp_path}/train"):
        ImageFolderData(tmp_path, 4, seed=0)
