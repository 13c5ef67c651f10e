"""Training: the paper's recipes, the iteration-based loop and its checkpoints."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig, build_trainer, paper_recipe
from .loop import Report, Trainer, TrainingDiverged, pick_device
from .recipe import Recipe, cifar_recipe, imagenet_recipe

__all__ = [
    "CheckpointError",
    "Recipe",
    "Report",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_trainer",
    "cifar_recipe",
    "imagenet_recipe",
    "load_checkpoint",
    "paper_recipe",
    "pick_device",
    "save_checkpoint",
]
