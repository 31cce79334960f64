"""``__all__`` is each module's public face, kept in step with what the module offers.

The rule, for every module and package of metamed whose dotted name has no part
starting with ``_`` (private modules such as ``learners/_training.py`` are exempt):

1. it defines ``__all__``, without repeats;
2. every name in ``__all__`` is importable: ``from module import *`` binds it;
3. nothing public is missing from ``__all__``:
   - a package (``__init__.py``) lists every name it binds that does not start with
     ``_``, other than submodules: whatever a package imports is a re-export;
   - a module lists every class and function it defines itself whose name does not
     start with ``_`` (what it imports from elsewhere belongs to the other module's
     ``__all__``).  A helper that is not meant for users takes a leading underscore.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import metamed


def _public_modules() -> list[tuple[str, bool]]:
    found = [("metamed", True)]
    for info in pkgutil.walk_packages(metamed.__path__, "metamed."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append((info.name, info.ispkg))
    return found


PUBLIC = _public_modules()
# ``from __future__ import annotations`` binds ``annotations`` in every module using it.
_FUTURE_FEATURE = type(annotations)


def _unlisted(module: types.ModuleType, is_package: bool) -> list[str]:
    listed = set(module.__all__)
    unlisted = []
    for name, value in vars(module).items():
        if name.startswith("_") or name in listed:
            continue
        if isinstance(value, (types.ModuleType, _FUTURE_FEATURE)):
            continue
        if is_package:
            unlisted.append(name)
        elif (inspect.isclass(value) or inspect.isfunction(value)) and (
            value.__module__ == module.__name__
        ):
            unlisted.append(name)
    return sorted(unlisted)


def test_the_walk_finds_the_subpackages() -> None:
    """Guards the test itself: an empty walk would pass every check below."""
    packages = {name for name, is_package in PUBLIC if is_package}
    assert {"metamed.data", "metamed.learners", "metamed.dosing"} <= packages


@pytest.mark.parametrize(("name", "is_package"), PUBLIC, ids=[name for name, _ in PUBLIC])
def test_all_is_complete_and_importable(name: str, is_package: bool) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    names = list(module.__all__)
    assert len(names) == len(set(names)), f"{name}.__all__ repeats a name"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 - the property under test
    assert not [n for n in names if n not in namespace], f"{name}.__all__ names missing objects"
    unlisted = _unlisted(module, is_package)
    assert not unlisted, f"{name} offers {unlisted} without listing them in __all__"
