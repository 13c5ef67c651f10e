"""The paper's numbers for each net, written once: errors in %, keyed by the net (a `ModelSpec`, so a residual
net's entry is for one shortcut option). A study sets them beside its results by default.

Test error (`TEST_ERROR`): Table 6 on CIFAR-10 (ResNet-110: the mean of 5 runs, 6.61 ± 0.16, best 6.43, since a
study's summary is a mean too); on ImageNet top-1 with 10-crop testing, from Table 2 (the 18- and 34-layer plain
nets and option-A ResNets) and Table 3 (ResNet-34 B and C, ResNet-50/101/152 with option B).
"""

from __future__ import annotations

from collections.abc import Mapping

from .spec import ModelSpec

TEST_ERROR: Mapping[ModelSpec, float] = {
    ModelSpec("cifar_resnet20"): 8.75,
    ModelSpec("cifar_resnet32"): 7.51,
    ModelSpec("cifar_resnet44"): 7.17,
    ModelSpec("cifar_resnet56"): 6.97,
    ModelSpec("cifar_resnet110"): 6.61,
    ModelSpec("cifar_resnet1202"): 7.93,
    ModelSpec("plain18"): 27.94,
    ModelSpec("plain34"): 28.54,
    ModelSpec("resnet18", "A"): 27.88,
    ModelSpec("resnet34", "A"): 25.03,
    ModelSpec("resnet34", "B"): 24.52,
    ModelSpec("resnet34", "C"): 24.19,
    ModelSpec("resnet50"): 22.85,
    ModelSpec("resnet101"): 21.75,
    ModelSpec("resnet152"): 21.43,
}

# the paper's other final tests, by metric (see results.summary.MORE_TESTS): Table 3's top-5 (10-crop), and
# Table 4's single-model multi-scale top-1 and top-5 (which has no 18-layer row)
MORE_TEST_ERROR: Mapping[str, Mapping[ModelSpec, float]] = {
    "test_error_10crop_top5": {
        ModelSpec("plain34"): 10.02,
        ModelSpec("resnet34", "A"): 7.76,
        ModelSpec("resnet34", "B"): 7.46,
        ModelSpec("resnet34", "C"): 7.40,
        ModelSpec("resnet50"): 6.71,
        ModelSpec("resnet101"): 6.05,
        ModelSpec("resnet152"): 5.71,
    },
    "test_error_multiscale": {
        ModelSpec("resnet34"): 21.84,
        ModelSpec("resnet50"): 20.74,
        ModelSpec("resnet101"): 19.87,
        ModelSpec("resnet152"): 19.38,
    },
    "test_error_multiscale_top5": {
        ModelSpec("resnet34"): 5.71,
        ModelSpec("resnet50"): 5.25,
        ModelSpec("resnet101"): 4.60,
        ModelSpec("resnet152"): 4.49,
    },
}
