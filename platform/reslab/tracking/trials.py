"""One trial as Ray Tune holds it: `TrialParams`, made once by the tuner from the study's trial and the run's
options, and read back from Tune's params by every part that needs it (the trainable, the resources, the
console, the MLflow callback, the sync). The one place that knows the layout of Tune's params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..training import TrainConfig
from .layout import variant_label
from .writer import TrialRecord


@dataclass(frozen=True)
class TrialParams:
    """What one trial trains and how it runs on its node."""

    label: str  # the variant's label
    seed: int
    config: Mapping[str, Any]  # `TrainConfig.to_dict()` of the grid point
    storage: str  # the study's storage (a data-parallel trial keeps its Ray Train run there)
    gpus_per_worker: float = 0.0  # the cluster has GPUs: a data-parallel trial's workers take one each
    early_stopping: bool = False  # a scheduler (a search's ASHA) may end it early: "stopped", not failed
    layer_responses: bool = False  # measure Fig. 7's responses at the end
    allow_cpu_fallback: bool = False  # a GPU torch cannot use: train on the CPU instead of failing
    data_source: str | None = None  # where to copy the dataset from when the node lacks it
    data_max_bytes: int | None = None  # the most that source may unpack to
    sampled: Mapping[str, float] = field(default_factory=dict)  # recipe values a search sampled for it

    def point(self) -> dict[str, Any]:
        """The trial's entry of Tune's param space (a search adds the sampled values beside it)."""
        return {k: v for k, v in asdict(self).items() if k != "sampled"}

    @classmethod
    def read(cls, params: Mapping[str, Any]) -> TrialParams:
        """The trial Tune's params (`{"trial": point, "sampled": values}`) describe."""
        return cls(**params["trial"], sampled=dict(params.get("sampled") or {}))

    @property
    def name(self) -> str:
        """The trial's label: its variant's, or for a search trial the values it sampled (3 significant digits)."""
        if self.sampled:
            return variant_label({k: float(f"{v:.3g}") for k, v in self.sampled.items()})
        return self.label

    @property
    def train_config(self) -> TrainConfig:
        """The config the trial trains: its grid point with the recipe values a search sampled applied."""
        config = TrainConfig.from_dict(dict(self.config))
        return replace(config, recipe=replace(config.recipe, **self.sampled)) if self.sampled else config

    def record(self, trial_id: str) -> TrialRecord:
        """Tracking's record of this trial."""
        return TrialRecord(trial_id, self.name, self.seed, self.config, self.sampled, self.early_stopping)


def trial_record(trial_id: str, params: Mapping[str, Any]) -> TrialRecord:
    """Tracking's record of the trial Tune's `params` describe."""
    return TrialParams.read(params).record(trial_id)


def error_reason(error: BaseException | str | None) -> str:
    """An error's first line with its type, e.g. "ValueError: ...": the reason a failed trial records."""
    if error is None:
        return "the trial raised an error (see error.txt in its trial folder)"
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return next((line for line in text.splitlines() if line.strip()), text)[:500]
