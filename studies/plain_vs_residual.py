"""Plain vs residual nets of growing depth: the degradation problem (Fig. 6, Table 2, Fig. 4).

Deeper plain nets have higher *training* error; the same stacks with identity shortcuts do not.
    python studies/plain_vs_residual.py --profile smoke
    python studies/plain_vs_residual.py --profile quick --data-dir data/cifar10
    python studies/plain_vs_residual.py --dataset imagenet --profile paper --data-dir /data/imagenet
"""

import sys

from reslab.study import Study, grid, main

CIFAR = Study(
    name="plain_vs_residual_cifar10",
    title="Fig. 6: plain vs residual nets on CIFAR-10",
    dataset="cifar10",
    variants=grid(model=[f"cifar_{kind}{depth}" for kind in ("plain", "resnet") for depth in (20, 32, 44, 56)]),
    paper={"cifar_resnet20": 8.75, "cifar_resnet32": 7.51, "cifar_resnet44": 7.17, "cifar_resnet56": 6.97},
)

IMAGENET = Study(
    name="plain_vs_residual_imagenet",
    title="Table 2 / Fig. 4: plain vs residual 18- and 34-layer nets on ImageNet (top-1, 10-crop)",
    dataset="imagenet",
    # Table 2's ResNets add no parameters to the plain nets: identity shortcuts, zero-padded (option A)
    variants=(*grid(model=["plain18", "plain34"]), *grid(model=["resnet18", "resnet34"], shortcut=["A"])),
    settings={"ten_crop": True},
    paper={"plain18": 27.94, "plain34": 28.54, "resnet18-A": 27.88, "resnet34-A": 25.03},
)

if __name__ == "__main__":
    sys.exit(main(CIFAR, IMAGENET))
