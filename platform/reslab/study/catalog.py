"""The studies reslab ships (`reslab.studies`, the checkout's studies/ folder): found by name, so an installed
wheel runs the same definitions as `python studies/NAME.py`."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from .spec import Study

PACKAGE = "reslab.studies"


def study_names() -> list[str]:
    """The shipped study files' names, e.g. "shortcut_ablation"."""
    package = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def study_module(name: str) -> ModuleType:
    """A shipped study file, imported; ValueError naming the valid names for any other."""
    names = study_names()
    if name not in names:
        raise ValueError(f"no study named {name!r}; valid: {', '.join(names)}")
    return importlib.import_module(f"{PACKAGE}.{name}")


def studies_of(module: ModuleType) -> tuple[Study, ...]:
    """The studies a file offers: its STUDIES (the first the default), else its STUDY."""
    studies = getattr(module, "STUDIES", None) or (getattr(module, "STUDY", None),)
    if not all(isinstance(s, Study) for s in studies):
        raise ValueError(f"{module.__name__} defines neither STUDY nor STUDIES as reslab Study objects")
    return tuple(studies)
