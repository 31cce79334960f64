"""Meta-learners and baselines, all under one contract (see :mod:`metamed.learners.base`).

Importing this package is cheap: it loads none of its modules, and so neither torch nor
scikit-learn, until one of its names is first used (``metamed.learners.MAML``, ``from
metamed.learners import make_learner``). The names and the module each comes from are
listed once, in ``__init__.pyi``, which type checkers read and ``lazy_loader`` turns into
this package's attributes (the scheme SciPy and scikit-image use; SPEC 1 of the
Scientific Python project).

Every learner registers itself under its CLI name (and every adapted model class under
its class name, for loading saved models) when its module is imported; every read of a
registry imports every module of this package first (:class:`base.Registry`), so it
never misses one that has not been used yet.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
