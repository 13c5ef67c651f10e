"""ResNets of depth 20 to 1202 on CIFAR-10 (Table 6, Fig. 6 right): deeper is better up to 110 layers;
1202 layers still train but overfit. The paper gives ResNet-110 as mean ± std of 5 runs.

    python studies/cifar_depth.py --profile smoke
    python studies/cifar_depth.py --profile paper --data-dir data/cifar10
"""

import sys

from reslab.launch import main
from reslab.study import Claim, Study, falls_with

STUDY = Study(
    name="cifar_depth",
    title="Table 6: CIFAR-10 test error of ResNets by depth (110 and 1202 with the lr 0.01 warm-up)",
    dataset="cifar10",
    variants=(
        {"model": "cifar_resnet20"},
        {"model": "cifar_resnet32"},
        {"model": "cifar_resnet44"},
        {"model": "cifar_resnet56"},
        {"model": "cifar_resnet110", "seeds": (0, 1, 2, 3, 4)},
        {"model": "cifar_resnet1202"},
    ),
    # the paper's numbers (Table 6; ResNet-110 the mean of its 5 runs) come from reslab.models.paper
    claims=(
        *falls_with(
            "cifar-deeper-is-better",
            "Deeper ResNets have lower test error up to 110 layers",
            "Table 6",
            "test_error",
            ["cifar_resnet20", "cifar_resnet32", "cifar_resnet44", "cifar_resnet56", "cifar_resnet110"],
        ),
        Claim(
            "resnet1202-overfits",
            "The 1202-layer net has higher test error than the 110-layer net (overfitting)",
            "Table 6",
            "test_error",
            lower="cifar_resnet110",
            higher="cifar_resnet1202",
        ),
        Claim(
            "resnet1202-still-trains",
            "The 1202-layer net's training error is similar to the 110-layer net's (margin ours: 0.2 points)",
            "Table 6 / Fig. 6 (right)",
            "train_error_late",
            lower="cifar_resnet110",
            higher="cifar_resnet1202",
            within=0.2,  # both train to well under 1 %: a wider margin would hold whatever the nets did
            kind="similar",
        ),
    ),
)

if __name__ == "__main__":
    sys.exit(main(STUDY))
