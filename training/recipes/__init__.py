"""The published training recipes, one frozen dataclass per method (stages are a field, not a class).

Recipe modules import their architecture, so the registry imports them only when asked for one.
"""

from __future__ import annotations

import importlib

from deblurcli.errors import UsageError
from training.recipes.base import Recipe

#: recipe name -> (module, class)
RECIPES = {
    "ifan": ("training.recipes.ifan", "IFANRecipe"),
    "drbnet": ("training.recipes.drbnet", "DRBNetRecipe"),
    "dmsft": ("training.recipes.dmsft", "DMSFTRecipe"),
    "kpac": ("training.recipes.kpac", "KPACRecipe"),
    "refocus": ("training.recipes.refocus", "RefocusRecipe"),
    "refocus-large": ("training.recipes.refocus", "RefocusLargeRecipe"),
}


def recipe_class(name: str) -> type[Recipe]:
    """The class of recipe ``name``.

    Raises:
        UsageError: no such recipe.
    """
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    module, cls = RECIPES[name]
    return getattr(importlib.import_module(module), cls)


def all_recipe_classes() -> dict[str, type[Recipe]]:
    return {name: recipe_class(name) for name in RECIPES}
