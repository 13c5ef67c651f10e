"""Layer responses of plain and residual nets (Fig. 7): the std of every 3x3 layer's output after BN,
before the ReLU / addition, on the test set. ResNets respond less than plain nets, deeper ResNets less
still. Results: layer_responses.csv (variant, seed, layer, std) beside the summary.

    python studies/layer_responses.py --profile smoke
    python studies/layer_responses.py --profile paper --data-dir data/cifar10
"""

import sys

from reslab.launch import main
from reslab.study import Claim, Study, grid

STUDY = Study(
    name="layer_responses",
    title="Fig. 7: layer responses of plain-20/56 and ResNet-20/56/110 on CIFAR-10",
    dataset="cifar10",
    variants=grid(model=["cifar_plain20", "cifar_plain56", "cifar_resnet20", "cifar_resnet56", "cifar_resnet110"]),
    layer_responses=True,
    claims=(
        *(
            Claim(
                f"resnet{depth}-responds-less-than-plain{depth}",
                f"ResNet-{depth}'s layers respond less (smaller std) than plain-{depth}'s",
                "Fig. 7",
                "response_std",
                lower=f"cifar_resnet{depth}",
                higher=f"cifar_plain{depth}",
                margin=0.2,  # ours: Fig. 7 shows plain nets' stds well above the ResNets'
            )
            for depth in (20, 56)
        ),
        Claim(
            "resnet56-responds-less-than-resnet20",
            "Deeper ResNets respond less: ResNet-56 below ResNet-20",
            "Fig. 7",
            "response_std",
            lower="cifar_resnet56",
            higher="cifar_resnet20",
            margin=0.1,  # ours
        ),
        Claim(
            "resnet110-responds-less-than-resnet56",
            "Deeper ResNets respond less: ResNet-110 below ResNet-56",
            "Fig. 7",
            "response_std",
            lower="cifar_resnet110",
            higher="cifar_resnet56",
            margin=0.1,  # ours
        ),
    ),
)

if __name__ == "__main__":
    sys.exit(main(STUDY))
