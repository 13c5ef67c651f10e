"""ImageNet ResNets of 18, 34, 50, 101 and 152 layers, bottleneck blocks from 50 (Table 3, option B), tested
10-crop (Table 3) and fully-convolutional at multiple scales (Table 4) at the end of each trial.

python studies/imagenet_depth.py --profile smoke
ray submit cluster/gpu.yaml studies/imagenet_depth.py -- --profile paper --data-dir /data/imagenet
"""

import sys

from reslab.launch import main
from reslab.study import Study, falls_with, grid

STUDY = Study(
    name="imagenet_depth",
    title="Table 3: ImageNet top-1 error (10-crop) of ResNets by depth, option B",
    dataset="imagenet",
    variants=grid(model=["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]),
    settings={"ten_crop": True, "multiscale": True},
    # Table 3 (top-1, 10-crop); ResNet-18 from Table 2, where it has option A (the paper gives no 18-layer B)
    paper={"resnet18": 27.88, "resnet34": 24.52, "resnet50": 22.85, "resnet101": 21.75, "resnet152": 21.43},
    # top-5 of Table 3, and Table 4 (single model, multi-scale), which has no 18-layer row
    paper_more={
        "test_error_10crop_top5": {"resnet34": 7.46, "resnet50": 6.71, "resnet101": 6.05, "resnet152": 5.71},
        "test_error_multiscale": {"resnet34": 21.84, "resnet50": 20.74, "resnet101": 19.87, "resnet152": 19.38},
        "test_error_multiscale_top5": {"resnet34": 5.71, "resnet50": 5.25, "resnet101": 4.60, "resnet152": 4.49},
    },
    claims=falls_with(
        "imagenet-deeper-is-better",
        "Deeper ResNets are more accurate (no degradation up to 152 layers)",
        "Table 3",
        "test_error_10crop",
        ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
    ),
)

if __name__ == "__main__":
    sys.exit(main(STUDY))
