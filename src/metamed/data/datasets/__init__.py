"""One module per dataset, each declaring its :class:`~metamed.data.registry.DatasetSpec`.

Every module here holds ``SPEC`` (name, version, licence, citation, homepage, options,
loader) and a docstring that lists what its loader does to the raw values and why
(``uci_heart.py`` is the model to copy); its file names, sizes, sha256 and public
origins live in ``<module>.files.json`` next to it.  Modules without a loader yet are
*spec only*: listed, fetched and verified, and their docstring says what a loader will
have to decide.

Importing this package imports every module in it and registers its ``SPEC``, loadable
datasets first, each group by name (the order ``metamed datasets`` lists them).  So to
add a dataset, put ``<name>.py`` and ``<name>.files.json`` here and describe it in
``docs/datasets/``; bump ``SPEC.version`` whenever a later change alters the cohort it
builds.
"""

from __future__ import annotations

import importlib
import pkgutil
import types

from metamed.data import registry

__all__ = ["MODULES"]

#: Module name -> the dataset module; every public module of this package is one
#: (``_``-prefixed modules hold helpers the loaders share).
MODULES: dict[str, types.ModuleType] = {
    info.name: importlib.import_module(f"{__name__}.{info.name}")
    for info in pkgutil.iter_modules(__path__)
    if not info.name.startswith("_")
}


def _order(spec: registry.DatasetSpec) -> tuple[bool, str]:
    return (not spec.loadable, spec.name)


for _spec in sorted((module.SPEC for module in MODULES.values()), key=_order):
    registry.register_dataset(_spec)
