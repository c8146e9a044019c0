"""`translate train --init MODEL`: a new run that starts from trained weights instead of random ones.

MODEL is anything `--model` takes elsewhere (a run folder, a checkpoint, a shipped or official name). The networks
the new recipe has and the file holds, by name (the generator, and the discriminator when the source has one),
are loaded before step 0; everything else (optimisers, step, RNG, image pools) starts fresh.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from translate.core import checkpoint
from translate.core.engine import main_process_first
from translate.errors import ConfigError
from translate.files import sha256_file
from translate.recipes import recipe_of
from translate.recipes.base import RecipeSpec
from translate.recipes.restore import load_config


@dataclass(frozen=True)
class InitSource:
    """The weights a run starts from."""

    model: str  # as given to --init
    path: Path  # the checkpoint it resolved to
    ckpt: checkpoint.Checkpoint
    spec: RecipeSpec  # the recipe it was trained with

    def base_config(self, spec: RecipeSpec) -> Any:
        """The config a run of `spec` from these weights starts from, before presets and options: the source's own
        (its networks and data sizes) with the recipe's default training and optimiser settings, so that the
        networks fit with no flags; a source of another recipe gives the recipe's defaults."""
        defaults = spec.config_class()
        if self.spec.config_class is not spec.config_class:
            return defaults
        config = load_config(self.ckpt, spec)
        return replace(config, train=defaults.train, optim=defaults.optim)

    def describe(self, loaded: list[str]) -> dict[str, Any]:
        """What the run's metadata records about where its weights came from."""
        return {
            "model": self.model,
            "path": str(self.path.resolve()),
            "sha256": sha256_file(self.path),
            "recipe": self.spec.name,
            "step": self.ckpt.step,
            "networks": loaded,
        }


def init_source(model: str) -> InitSource:
    """Resolve --init MODEL to a checkpoint (an official name is downloaded once, by rank 0 under DDP)."""
    from translate.deploy.models import resolve_checkpoint

    with main_process_first():
        path = resolve_checkpoint(model)
    ckpt = checkpoint.read(path)
    return InitSource(model, path, ckpt, recipe_of(ckpt))


def load_weights(source: InitSource, modules: dict[str, nn.Module], recipe: str) -> list[str]:
    """Load the source's networks into the same-named `modules` (a fresh recipe's, before step 0); returns the
    names loaded. Every network is checked against the file before any is loaded, and one that does not fit is a
    one-line error naming its tensors."""
    stored = set(source.ckpt.meta.get("modules", []))
    names = [name for name in modules if name in stored]
    if not names:
        raise ConfigError(
            f"--init {source.model}: {source.path} holds {', '.join(sorted(stored)) or 'no networks'}, none of the "
            f"{recipe} networks ({', '.join(modules)})"
        )
    for name in names:
        problems = checkpoint.differences(source.path, name, modules[name])
        if problems:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise ConfigError(
                f"--init {source.model}: its {name} does not fit the network this run builds: "
                f"{'; '.join(problems[:3])}{more}. The run takes the source's network settings unless an option "
                "changes them: drop the options that do"
            )
    for name in names:
        checkpoint.load_module(source.path, name, modules[name])
    return names
