"""Shortcut options A, B and C against the plain net (Table 3), on ResNet-34 and on a CIFAR net.

python studies/shortcut_ablation.py --profile smoke
ray submit cluster/gpu.yaml studies/shortcut_ablation.py -- --profile paper --data-dir /data/imagenet
"""

import sys

from reslab.study import Study, grid, main

IMAGENET = Study(
    name="shortcut_ablation_imagenet",
    title="Table 3: shortcut options on ResNet-34, ImageNet top-1 (10-crop)",
    dataset="imagenet",
    variants=({"model": "plain34"}, *grid(model=["resnet34"], shortcut=["A", "B", "C"])),
    settings={"ten_crop": True},
    paper={"plain34": 28.54, "resnet34-A": 25.03, "resnet34-B": 24.52, "resnet34-C": 24.19},
)

CIFAR = Study(
    name="shortcut_ablation_cifar10",
    title="Shortcut options A/B/C on CIFAR-10 ResNet-20 (no paper numbers: the paper uses A on CIFAR)",
    dataset="cifar10",
    variants=({"model": "cifar_plain20"}, *grid(model=["cifar_resnet20"], shortcut=["A", "B", "C"])),
    paper={"cifar_resnet20-A": 8.75},
)

if __name__ == "__main__":
    sys.exit(main(IMAGENET, CIFAR))
