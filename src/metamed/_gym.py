"""Registration of metamed's Gymnasium environments, without importing Gymnasium early.

``gymnasium.make("metamed/GlucoseDosing-v0")`` must work after a plain ``import metamed``
(Gymnasium's convention: a package registers its environments on import).  Importing
Gymnasium costs about 0.3 s and the dosing package several seconds, while
``import metamed`` costs milliseconds, and Gymnasium 1.x no longer loads plugin entry
points.  So :func:`install` registers the environment at once when Gymnasium is already
imported, and otherwise puts a finder on ``sys.meta_path`` that registers it right after
Gymnasium's own import finishes.  Registration names the entry points as strings, so
nothing of :mod:`metamed.dosing` is imported until an environment is made.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

__all__ = ["ENV_ID", "install", "register_envs"]

ENV_ID = "metamed/GlucoseDosing-v0"


def register_envs() -> None:
    """Register ``metamed/GlucoseDosing-v0`` with Gymnasium (idempotent)."""
    import gymnasium as gym

    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="metamed.dosing.env:GlucoseDosingEnv",
            vector_entry_point="metamed.dosing.env:GlucoseVectorEnv",
        )


# The finder and loader below follow importlib's protocols by duck typing: importing
# importlib.abc would cost more than the rest of `import metamed` (typing, resources).
class _RegisteringLoader:
    """Gymnasium's own loader, plus registration once its module has executed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        register_envs()

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._inner, name)


class _GymnasiumImportHook:
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the search below from recursing
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Register now if Gymnasium is imported, else as soon as it is."""
    if "gymnasium" in sys.modules:
        register_envs()
    elif not any(isinstance(f, _GymnasiumImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _GymnasiumImportHook())
