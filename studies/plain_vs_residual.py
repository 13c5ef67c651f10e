"""Plain vs residual nets of growing depth: the degradation problem (Fig. 6, Table 2, Fig. 4).

Deeper plain nets have higher *training* error; the same stacks with identity shortcuts do not.
    python studies/plain_vs_residual.py --profile smoke
    python studies/plain_vs_residual.py --profile quick --data-dir data/cifar10
    python studies/plain_vs_residual.py --dataset imagenet --profile paper --data-dir /data/imagenet
"""

import sys

from reslab.launch import main
from reslab.study import Claim, Study, falls_with, grid

CIFAR = Study(
    name="plain_vs_residual_cifar10",
    title="Fig. 6: plain vs residual nets on CIFAR-10",
    dataset="cifar10",
    # Fig. 6: plain-20…56 plotted (plain-110 named in its text: training error above 60 %), ResNet-20…110
    variants=grid(model=[f"cifar_{kind}{depth}" for kind in ("plain", "resnet") for depth in (20, 32, 44, 56, 110)]),
    # the paper's numbers (Table 6 for the ResNets; none for the plain nets) come from reslab.models.paper
    claims=(
        # Fig. 6 left: the degradation problem
        *falls_with(
            "plain-deeper-trains-worse",
            "Deeper plain nets have higher training error",
            "Fig. 6 (left)",
            "train_error_late",
            ["cifar_plain110", "cifar_plain56", "cifar_plain44", "cifar_plain32", "cifar_plain20"],
            margin=1.0,  # ours: Fig. 6 (left) shows gaps of a few points between neighbours
        ),
        Claim(
            "plain110-fails-to-train",
            "Plain-110 has a training error above 60 %",
            "Fig. 6 (left), text",
            "train_error_late",
            kind="above",
            higher="cifar_plain110",
            value=60.0,
            margin=5.0,  # ours: the paper gives no number, only "above 60 %"
        ),
        Claim(
            "plain56-tests-worse-than-plain20",
            "Plain-56 has higher test error than plain-20 (the degradation shows in test error too)",
            "Fig. 1 / Fig. 6 (left)",
            "test_error",
            lower="cifar_plain20",
            higher="cifar_plain56",
            margin=1.0,  # ours: the paper gives no number for plain nets on CIFAR
        ),
        # Fig. 6 middle / Table 6: residual nets gain from depth
        *falls_with(
            "resnet-deeper-is-better",
            "Deeper ResNets have lower test error",
            "Table 6 / Fig. 6 (middle)",
            "test_error",
            ["cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56", "cifar_resnet110"],
        ),
        Claim(
            "resnet56-trains-better-than-plain56",
            "ResNet-56 has lower training error than plain-56 (no degradation)",
            "Fig. 6",
            "train_error_late",
            lower="cifar_resnet56",
            higher="cifar_plain56",
            margin=2.0,  # ours: Fig. 6 shows several points
        ),
        Claim(
            "resnet110-trains-better-than-plain110",
            "ResNet-110 trains well where plain-110 does not (plain-110: training error above 60 %)",
            "Fig. 6",
            "train_error_late",
            lower="cifar_resnet110",
            higher="cifar_plain110",
            margin=10.0,  # ours: plain-110 is above 60 %, ResNet-110 trains to a few %
        ),
        Claim(
            "resnet56-tests-better-than-plain56",
            "ResNet-56 has lower test error than plain-56",
            "Fig. 6",
            "test_error",
            lower="cifar_resnet56",
            higher="cifar_plain56",
            margin=1.0,  # ours: the paper gives no number for plain-56 on CIFAR
        ),
    ),
)

IMAGENET = Study(
    name="plain_vs_residual_imagenet",
    title="Table 2 / Fig. 4: plain vs residual 18- and 34-layer nets on ImageNet (top-1, 10-crop)",
    dataset="imagenet",
    # Table 2's ResNets add no parameters to the plain nets: identity shortcuts, zero-padded (option A)
    variants=(*grid(model=["plain18", "plain34"]), *grid(model=["resnet18", "resnet34"], shortcut=["A"])),
    settings={"ten_crop": True},
    # the paper's numbers (Table 2; top-5 from Table 3) come from reslab.models.paper
    claims=(
        Claim(
            "plain34-trains-worse-than-plain18",
            "Plain-34 has higher training error than plain-18 throughout training (degradation)",
            "Fig. 4 (left)",
            "train_error",
            lower="plain18",
            higher="plain34",
            from_fraction=0.1,  # "throughout": every evaluation after the first tenth (both start at chance)
            margin=1.0,  # ours: Fig. 4 shows a gap of a few points
        ),
        Claim(
            "plain34-tests-worse-than-plain18",
            "Plain-34 has higher validation error than plain-18",
            "Table 2",
            "test_error_10crop",  # Table 2 is 10-crop
            lower="plain18",
            higher="plain34",
        ),
        Claim(
            "resnet18-as-accurate-as-plain18",
            "ResNet-18 is comparably accurate to plain-18 (margin ours: 0.5 points)",
            "Table 2 / Sec. 4.1",
            "test_error_10crop",
            lower="resnet18-A",
            higher="plain18",
            within=0.5,
            kind="similar",
        ),
        Claim(
            "resnet18-converges-faster-than-plain18",
            "ResNet-18 converges faster than plain-18: lower training error at the early stage",
            "Sec. 4.1 / Fig. 4",
            "train_error",
            lower="resnet18-A",
            higher="plain18",
            from_fraction=0.05,
            until_fraction=0.25,  # ours: "the early stage", before the first lr drop
            margin=1.0,
        ),
        Claim(
            "resnet34-trains-better-than-resnet18",
            "ResNet-34 has lower training error than ResNet-18",
            "Fig. 4 (right)",
            "train_error_late",
            lower="resnet34-A",
            higher="resnet18-A",
            margin=1.0,  # ours: Fig. 4 (right) shows about a point or more
        ),
        Claim(
            "resnet34-trains-better-than-plain34",
            "ResNet-34 has much lower training error than plain-34",
            "Fig. 4",
            "train_error_late",
            lower="resnet34-A",
            higher="plain34",
            margin=2.0,  # ours: "considerably lower"
        ),
        Claim(
            "resnet34-tests-better-than-resnet18",
            "ResNet-34 has lower validation error than ResNet-18",
            "Table 2",
            "test_error_10crop",  # Table 2 is 10-crop
            lower="resnet34-A",
            higher="resnet18-A",
        ),
        Claim(
            "resnet34-tests-better-than-plain34",
            "ResNet-34 has lower validation error than plain-34",
            "Table 2",
            "test_error_10crop",  # Table 2 is 10-crop
            lower="resnet34-A",
            higher="plain34",
        ),
    ),
)

STUDIES = (CIFAR, IMAGENET)  # the first is the default; --dataset picks the other

if __name__ == "__main__":
    sys.exit(main(*STUDIES))
