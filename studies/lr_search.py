"""Learning rate and weight decay around the paper's CIFAR recipe (lr 0.1, weight decay 1e-4), searched
with Optuna's TPE sampler through Ray Tune, ASHA stopping trials that fall behind.

As the paper chose its schedule, the search selects on a 45k/5k train/validation split of the training
set (the same split for every trial); the test error is reported beside it but never optimised.

    python studies/lr_search.py --profile smoke
    python studies/lr_search.py --profile quick --data-dir data/cifar10
"""

import sys

from reslab.launch import main
from reslab.study import Search, Study

STUDY = Study(
    name="lr_search",
    title="Learning-rate / weight-decay search for ResNet-20 on CIFAR-10 (the paper: lr 0.1, wd 1e-4)",
    dataset="cifar10",
    variants=({"model": "cifar_resnet20"},),
    settings={"validation_fraction": 0.1, "validation_seed": 0},
    metric="validation_error",
    search=Search(
        space={"lr": (0.01, 1.0), "weight_decay": (1e-5, 1e-3)},
        samples={"smoke": 4, "quick": 16, "paper": 32},
    ),
    claims=(),  # the paper fixes lr 0.1 and weight decay 1e-4 without a search: it claims nothing to check here
)

if __name__ == "__main__":
    sys.exit(main(STUDY))
