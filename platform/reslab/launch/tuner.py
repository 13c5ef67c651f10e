"""The Ray Tune `Tuner` of a study: a grid of its trials, or Optuna's samples with ASHA stopping for a search."""

from __future__ import annotations

from typing import Any

from ..study import Study
from ..study.plan import trial_compute
from ..tracking.trials import TrialParams
from .prepare import Launch
from .search_journal import optuna_storage
from .trial import MAX_FAILURES

# A trial's worker starts a Python process and imports torch and Ray Tune (about 3 s on a 2-core machine):
# trials that ask for the same resources run one after another in the same worker instead. Safe because a
# trial keeps no state in its process: `train_trial` builds everything from its config and seeds it.
REUSE_ACTORS = True


def new_tuner(trainable: Any, launch: Launch, gpus: float, callbacks: list[Any]) -> Any:
    """A Tuner over the study's grid, or, for a search study, over Optuna's samples with ASHA stopping."""
    from ray import tune

    from .console import ConsoleReport

    study, profile, trials, storage = launch.study, launch.profile, launch.trials, launch.storage_uri
    options = launch.options
    # the costliest trials first (stable: equal ones keep the study's order): on a fixed pool of workers the
    # study ends when its last trial does, and a ResNet-1202 started last would run alone at the end
    ordered = sorted(trials, key=lambda t: -trial_compute(t.config))
    points = [
        TrialParams(
            t.label, t.seed, t.config.to_dict(), storage, gpus_per_worker=gpus,
            early_stopping=study.search is not None,  # ASHA may end a search's trials early: "stopped", not failed
            layer_responses=study.layer_responses, allow_cpu_fallback=options.allow_cpu_fallback,
            data_source=options.data_source, data_max_bytes=options.data_max_bytes,
        ).point()
        for t in ordered
    ]  # fmt: skip

    def trial_name(trial: Any) -> str:
        return TrialParams.read(trial.config).record(trial.trial_id).run_name

    names = {"trial_name_creator": trial_name, "trial_dirname_creator": lambda t: f"{trial_name(t)}-{t.trial_id}"}
    if study.search is None:
        param_space = {"trial": tune.grid_search(points)}
        tune_config = tune.TuneConfig(
            max_concurrent_trials=options.max_concurrent_trials, reuse_actors=REUSE_ACTORS, **names
        )
    else:
        param_space = {"trial": points[0], "sampled": {k: tune.loguniform(*v) for k, v in study.search.space.items()}}
        iterations = trials[0].config.recipe.iterations
        tune_config = search_config(study, profile, iterations, options.max_concurrent_trials, names, launch.path)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=launch.name,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[*callbacks, ConsoleReport()],
            verbose=2 if options.verbose else 0,  # Ray Tune's own status table and trial dumps, behind --verbose
        ),
    )


def search_config(
    study: Study, profile: str, iterations: int, max_concurrent: int | None, names: dict, experiment_path: str
) -> Any:
    """Optuna TPE (seeded, so a search is repeatable) proposing trials, ASHA stopping the weak ones; the
    Optuna study is kept in a journal beside the results (`search_journal`), named after the experiment."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    search = study.search
    return tune.TuneConfig(
        metric=study.metric,
        mode="min",
        search_alg=OptunaSearch(
            sampler=optuna.samplers.TPESampler(seed=0),
            storage=optuna_storage(experiment_path),
            study_name=experiment_path.rstrip("/").rsplit("/", 1)[-1],
        ),
        scheduler=ASHAScheduler(
            time_attr="iteration",
            max_t=iterations,
            grace_period=max(1, round(search.grace_fraction * iterations)),
            reduction_factor=search.reduction_factor,
        ),
        num_samples=search.samples.get(profile, 1),
        max_concurrent_trials=max_concurrent,
        reuse_actors=REUSE_ACTORS,
        **names,
    )
