"""translate: train, export and deploy GAN generators, from the command line or from Python.

    >>> import translate
    >>> kai = translate.load("ming2kai")(PIL.Image.open("ming.png"))      # a translator: PIL in, PIL out
    >>> digits = translate.load("mnist-cgan").sample(16, seed=3, label=7)  # a generator: PIL images
    >>> run = translate.train("photos/", recipe="cyclegan", steps=1000)    # a run folder, `.load()` to use it

Names are imported on first use, so `import translate` is fast and imports no PyTorch; PyTorch is imported only
when a checkpoint is loaded or a model is trained.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name → the module that defines it.
_EXPORTS = {
    "load": "translate.api.loading",
    "Translator": "translate.api.translator",
    "FolderSummary": "translate.api.translator",
    "Generator": "translate.api.generator",
    "train": "translate.api.training",
    "Run": "translate.api.training",
    "export": "translate.api.exporting",
    "ExportResult": "translate.deploy.export",
    "evaluate": "translate.api.evaluation",
    "EvaluationReport": "translate.api.evaluation",
    "models": "translate.api.catalogue",
    "available_recipes": "translate.api.catalogue",
    "RecipeInfo": "translate.api.catalogue",
    "ModelDescription": "translate.description",
    "TranslateError": "translate.errors",
}
__all__ = [  # noqa: RUF022 (in the order of _EXPORTS)
    "load",
    "Translator",
    "FolderSummary",
    "Generator",
    "train",
    "Run",
    "export",
    "ExportResult",
    "evaluate",
    "EvaluationReport",
    "models",
    "available_recipes",
    "RecipeInfo",
    "ModelDescription",
    "TranslateError",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time the names come from __getattr__
    from translate.api.catalogue import RecipeInfo, available_recipes, models
    from translate.api.evaluation import EvaluationReport, evaluate
    from translate.api.exporting import export
    from translate.api.generator import Generator
    from translate.api.loading import load
    from translate.api.training import Run, train
    from translate.api.translator import FolderSummary, Translator
    from translate.deploy.export import ExportResult
    from translate.description import ModelDescription
    from translate.errors import TranslateError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'translate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
