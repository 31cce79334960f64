"""The one learner contract shared by meta-learners and baselines.

::

    learner = MAML(inner_steps=5, inner_lr=0.1, random_state=0)
    learner.meta_fit(train_tasks, val_tasks=val_tasks)   # returns self; state ends in "_"
    model = learner.adapt(support)                        # new object; never mutates learner
    y_hat = model.predict(query_X)                        # every adapted model
    p = model.predict_proba(query_X)                      # models of a binary outcome
    learner.save(path); MAML.load(path)

Each learner declares its hyperparameters once, as keyword-only fields with the values
they accept (:mod:`metamed.learners._params`); ``__init__`` only stores them and
``meta_fit`` validates them (the scikit-learn estimator contract), so ``get_params``,
``set_params``, ``clone`` and ``sklearn.base.clone`` work from the signature.
Randomness enters only through ``random_state``.  A learner states the outcome types it
models (``outcome_types``); ``meta_fit`` records the tasks' one outcome in
``outcome_type_`` and ``adapt`` refuses a support set of another.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from metamed.artifacts import TextFile, artifact_error, read_artifact, write_artifact
from metamed.data.cohort import MAX_ABS_VALUE
from metamed.errors import (
    MetamedTypeError,
    MetamedValueError,
    NotFittedError,
    UnknownNameError,
    did_you_mean,
    unknown_name,
)
from metamed.learners._params import check_hyperparameters
from metamed.outcomes import BINARY, Outcome
from metamed.tasks.task import Task, check_support_task, check_task_list

__all__ = [
    "ADAPTED_MODELS",
    "Adapter",
    "AdaptedModel",
    "BinaryModel",
    "MetaLearner",
    "register",
    "LEARNERS",
    "Registry",
    "make_learner",
    "learner_class",
    "learner_names",
    "ProgressCallback",
    "learners_for",
    "load_every_learner",
    "check_outcome_supported",
    "check_features",
    "nested_model",
    "nested_model_state",
    "prefixed_text_files",
]

#: ``progress(iteration, total_iterations, train_loss)``, called after each meta-training
#: iteration (epoch for the pooled model).
ProgressCallback = Callable[[int, int, float], None]

Registered = TypeVar("Registered")


class Registry(Mapping[str, Registered]):
    """Classes by name, complete whenever it is read.

    The package loads its modules lazily, and a class enters its registry only when its
    module is imported; so every read (``name in registry``, ``registry[name]``, listing)
    first imports every module of the package (:func:`load_every_learner`), wherever the
    reader imported the registry from.  Classes enter it through :meth:`add`.
    """

    def __init__(self) -> None:
        self._classes: dict[str, Registered] = {}

    def add(self, name: str, cls: Registered) -> None:
        self._classes[name] = cls

    def __getitem__(self, name: str) -> Registered:
        load_every_learner()
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        load_every_learner()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        load_every_learner()
        return iter(dict(self._classes))

    def __len__(self) -> int:
        load_every_learner()
        return len(self._classes)


#: Every registered learner by its method name (see :func:`register`).
LEARNERS: Registry[type[MetaLearner]] = Registry()
#: Every AdaptedModel subclass by class name: where a saved model's class is looked up.
ADAPTED_MODELS: Registry[type[AdaptedModel]] = Registry()

#: The ``kind`` field of an artifact manifest.
META_LEARNER = "meta-learner"
ADAPTED_MODEL = "adapted-model"


def register(name: str):
    """Class decorator adding a learner to the registry under ``name`` (CLI method name)."""

    def wrap(cls: type[MetaLearner]) -> type[MetaLearner]:
        cls.name = name
        LEARNERS.add(name, cls)
        return cls

    return wrap


_every_learner_loaded = False
_loading = False
_load_lock = threading.RLock()


def load_every_learner() -> None:
    """Import every module of :mod:`metamed.learners` once, so that each learner and
    adapted model class has registered itself.

    The package loads its modules lazily (on a name's first use), so every read of a
    :class:`Registry` calls this first: without it ``learner_names()`` would list only the
    learners whose modules happened to be imported already.
    """
    global _every_learner_loaded, _loading
    if _every_learner_loaded:
        return
    # Other threads wait here until every module is in: a service's first concurrent
    # requests once read the registry half-filled ("class 'BinaryAdaptedMLP' is not one
    # this metamed knows").
    with _load_lock:
        if _every_learner_loaded or _loading:  # _loading: re-entered from a module it imports
            return
        _loading = True
        try:
            package = importlib.import_module(__package__)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{__package__}.{module.name}")
            _every_learner_loaded = True
        finally:
            _loading = False


def learner_names() -> list[str]:
    """Every registered learner's name, sorted."""
    return sorted(LEARNERS)


def learner_class(name: str) -> type[MetaLearner]:
    """The learner class registered under ``name``, with a "did you mean" for typos."""
    if name not in learner_names():
        raise unknown_name("method", name, LEARNERS)
    return LEARNERS[name]


def learners_for(outcome: Outcome) -> list[str]:
    """Names of the registered learners that model ``outcome`` (their ``outcome_types``)."""
    return [n for n in learner_names() if outcome in LEARNERS[n].outcome_types]


def check_outcome_supported(name: str, learner: type[MetaLearner], outcome: Outcome) -> None:
    """Raise a clear error, naming the learners that do, if ``learner`` cannot model
    ``outcome``; the protocol calls it for every method before training any."""
    if outcome in learner.outcome_types:
        return
    able = learners_for(outcome)
    fits = (
        f"Methods for {outcome} outcomes: {', '.join(able)}; drop '{name}' from the methods, or "
        "leave the methods out to run every one that fits the outcome."
        if able
        else f"No registered method models {outcome} outcomes."
    )
    raise MetamedValueError(
        f"Method '{name}' does not support a {outcome} outcome (it models "
        f"{' and '.join(map(str, learner.outcome_types))} outcomes). {fits}"
    )


def make_learner(name: str, **params: Any) -> MetaLearner:
    """Instantiate a registered learner by name, with a "did you mean" for typos."""
    return learner_class(name)(**params)


def check_features(X: Any, n_features: int, what: str = "X") -> np.ndarray:
    """Model inputs as a float32 array of shape (n, ``n_features``), or one clear error.

    The one input check of every learner: adapted models run it on the rows they are
    asked to score and ``adapt`` on the support set, so every learner refuses the same
    inputs with the same message (a NaN once went through the MLP models as NaN risks).

    Raises
    ------
    MetamedTypeError
        ``X`` does not hold numbers (text, mixed objects).
    MetamedValueError
        Wrong shape, NaN or infinite values, or values beyond the float32 range.
    """
    fix = "Preprocess the rows with the Preprocessor fitted at meta-training."
    try:
        arr = np.asarray(X)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        cells = np.asarray(X, dtype=object).ravel() if not isinstance(X, (str, bytes)) else [X]
        example = next((c for c in cells if not isinstance(c, (int, float, np.number))), X)
        raise MetamedTypeError(
            f"{what} must hold numbers only (preprocessed features), got {example!r}. {fix}"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise MetamedTypeError(
            f"{what} must hold numbers (preprocessed features), got an array of dtype {arr.dtype}. "
            f"{fix}"
        )
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise MetamedValueError(
            f"{what} must have shape (n_rows, {n_features}), got {arr.shape}. {fix}"
        )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise MetamedValueError(
                f"{what} holds {int(bad.sum())} NaN or inf value(s) (first at row {row}, column "
                f"{col}); impute them (the fitted Preprocessor does) or drop those rows."
            )
        huge = np.abs(arr) > MAX_ABS_VALUE
        if huge.any():
            row, col = (int(i) for i in np.argwhere(huge)[0])
            raise MetamedValueError(
                f"{what} holds {int(huge.sum())} value(s) beyond the float32 range (|x| > "
                f"{MAX_ABS_VALUE:.2e}; first at row {row}, column {col}: {arr[row, col]:.3g}); "
                f"models compute in float32. {fix}"
            )
    return arr.astype(np.float32, copy=False)


class AdaptedModel(ABC):
    """A model adapted to one task: ``predict(X)`` gives one prediction per row, shape (n,).

    What a prediction is depends on the model's ``outcome_type``: a value in the
    outcome's units (numeric), a class label (binary; such models also give
    probabilities, see :class:`BinaryModel`).  ``model.outcome_type.predict(model, X)``
    is the prediction the default metrics score.

    Every subclass is entered in :data:`ADAPTED_MODELS` under its class name, which is how
    :meth:`load` finds the class of a saved model (never by importing a path from a file).
    Subclasses set ``n_features`` and pass every ``X`` they are given through
    :meth:`_inputs` before using it.
    """

    #: The outcome this model predicts; every concrete model class states it.
    outcome_type: ClassVar[Outcome]
    #: Input width the model was adapted on.
    n_features: int

    def _inputs(self, X: Any) -> np.ndarray:
        """``X`` checked by :func:`check_features` against this model's input width."""
        return check_features(X, self.n_features)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ADAPTED_MODELS.add(cls.__name__, cls)

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """One prediction per row of ``X``, shape (n,)."""

    @classmethod
    def joint(cls, models: Sequence[AdaptedModel]) -> Callable[[Any], np.ndarray] | None:
        """One function of ``X`` giving every one of ``models``' predictions at once.

        Its answer has shape ``(len(models), n)``: each model's ``predict_proba`` for a
        binary outcome, its ``predict`` otherwise.  Conformal sets ask a dozen fold
        models about the same rows; a class whose models can share one computation
        overrides this (the adapted MLPs: one batched forward pass).  ``None``, the
        default, means that each model is asked in turn.
        """
        return None

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save the adapted model as an artifact folder at ``path`` (see :meth:`MetaLearner.save`)."""
        return write_artifact(path, self._artifact_content())

    @classmethod
    def load(cls, path: str | Path) -> AdaptedModel:
        """Load a model saved with :meth:`save`; the same checks as :meth:`MetaLearner.load`."""
        return cls._from_artifact_content(read_artifact(path), path)

    def _artifact_state(self) -> dict[str, Any]:
        """Everything a prediction needs; override to turn library objects into arrays/text."""
        return dict(vars(self))

    @classmethod
    def _from_artifact_state(cls, state: dict[str, Any]) -> AdaptedModel:
        """Rebuild from :meth:`_artifact_state` output without re-running ``__init__``."""
        model = cls.__new__(cls)
        vars(model).update(state)
        return model

    def _artifact_content(self) -> dict[str, Any]:
        section = {"class": type(self).__name__, "state": self._artifact_state()}
        return _content(
            ADAPTED_MODEL, self.outcome_type, getattr(self, "n_features", None), section
        )

    @classmethod
    def _from_artifact_content(cls, content: dict[str, Any], path: str | Path) -> AdaptedModel:
        spec = _section(content, ADAPTED_MODEL, "model", path)
        name = str(spec.get("class"))
        if name not in ADAPTED_MODELS:
            raise artifact_error(
                path,
                f"adapted model class '{name}' is not one this metamed knows."
                f"{did_you_mean(str(name), ADAPTED_MODELS)} Known: {', '.join(sorted(ADAPTED_MODELS))}.",
            )
        target = ADAPTED_MODELS[name]
        if not issubclass(target, cls):
            raise artifact_error(path, f"it holds a {name}, not a {cls.__name__}.")
        try:
            return target._from_artifact_state(spec.get("state", {}))
        except MetamedValueError as error:
            raise artifact_error(path, str(error)) from None


class BinaryModel(AdaptedModel):
    """A model of a binary outcome: ``predict_proba`` gives P(y = 1), ``predict`` the class."""

    outcome_type: ClassVar[Outcome] = BINARY

    @abstractmethod
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row of ``X``, shape (n,)."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels from a 0.5 threshold on ``predict_proba``."""
        return (self.predict_proba(X) >= 0.5).astype(np.int64)


def prefixed_text_files(value: Any, prefix: str, remove: bool = False) -> Any:
    """``value`` with every :class:`TextFile` in it renamed ``<prefix>-<name>`` (or, with
    ``remove``, that prefix taken off again), so that the state of several models or
    learners saved in one folder keeps its files apart."""
    if isinstance(value, TextFile):
        if remove:
            return TextFile(value.name.removeprefix(f"{prefix}-"), value.text)
        return TextFile(f"{prefix}-{value.name}", value.text)
    if isinstance(value, dict):
        return {k: prefixed_text_files(v, prefix, remove) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(prefixed_text_files(v, prefix, remove) for v in value)
    return value


def nested_model_state(model: AdaptedModel, prefix: str) -> dict[str, Any]:
    """``model`` as {class, state}, for a model saved inside another one's state."""
    return {
        "class": type(model).__name__,
        "state": prefixed_text_files(model._artifact_state(), prefix),
    }


def nested_model(section: dict[str, Any], outer: type) -> AdaptedModel:
    """The model saved by :func:`nested_model_state` inside a model of class ``outer``
    (which may not nest itself, so a damaged file cannot recurse without end)."""
    name = str(section.get("class"))
    if name not in ADAPTED_MODELS or issubclass(ADAPTED_MODELS[name], outer):
        raise MetamedValueError(f"adapted model class '{name}' is not one this metamed knows.")
    return ADAPTED_MODELS[name]._from_artifact_state(section.get("state", {}))


def _content(
    kind: str, outcome: Outcome | None, n_inputs: int | None, section: dict[str, Any]
) -> dict[str, Any]:
    """The manifest body of a model saved alone; a Pipeline fills the last two fields."""
    return {
        "kind": kind,
        "outcome": {"kind": None if outcome is None else outcome.name},
        "features": {"n_inputs": n_inputs},
        "learner" if kind == META_LEARNER else "model": section,
        "preprocessing": None,
        "provenance": None,
    }


def _section(content: dict[str, Any], kind: str, key: str, path: str | Path) -> dict[str, Any]:
    """The manifest's ``key`` section, after checking that the artifact is of ``kind``."""
    found = content.get("kind")
    if found != kind:
        loaders = {META_LEARNER: "MetaLearner.load", ADAPTED_MODEL: "AdaptedModel.load"}
        loader = loaders.get(found) if isinstance(found, str) else None
        hint = f"; load it with {loader}" if loader else ""
        raise artifact_error(path, f"it holds a {found!r}, not a {kind!r}{hint}.")
    section = content.get(key)
    if not isinstance(section, dict):
        raise artifact_error(path, f"the manifest of a {kind!r} needs a '{key}' section.")
    return section


class Adapter(Protocol):
    """Anything that adapts to a support set: a fitted :class:`MetaLearner`, or a wrapper
    of one (:class:`~metamed.learners.recalibration.RecalibratingAdapter`)."""

    def adapt(self, support: Task) -> AdaptedModel: ...


class MetaLearner(ABC):
    """Base class: hyperparameters in ``__init__``, learned state in attributes ending in ``_``."""

    name: ClassVar[str] = "learner"
    #: True for learners that do not use the training tasks at adaptation (local baselines).
    uses_meta_training: ClassVar[bool] = True
    #: The outcome types this learner can model; every learner states them.
    outcome_types: ClassVar[tuple[Outcome, ...]] = ()
    #: The training tasks' outcome type, set by ``meta_fit``.
    outcome_type_: Outcome
    #: Run-time hook called during meta-training; a hyperparameter of the learners that
    #: take it in ``__init__``, otherwise set on the instance.  Never saved.
    progress: ProgressCallback | None = None

    # -- scikit-learn style parameter handling -------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        """The hyperparameters: the (keyword-only) parameters of ``__init__``, in order."""
        return list(inspect.signature(cls).parameters)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters by name (scikit-learn's estimator API).

        ``deep`` is accepted for scikit-learn; no hyperparameter holds an estimator.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> MetaLearner:
        """Set hyperparameters by name and return ``self``; checked at ``meta_fit``."""
        known = self._param_names()
        for name in params:
            if name not in known:
                raise UnknownNameError(
                    f"{type(self).__name__} has no hyperparameter '{name}'."
                    f"{did_you_mean(name, known)} Its hyperparameters: {', '.join(known)}."
                )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self) -> MetaLearner:
        """A new, unfitted learner with the same hyperparameters."""
        return type(self)(**self.get_params(deep=False))

    def _validate_params(self) -> None:
        """Check every hyperparameter against its declaration (called by ``meta_fit``)."""
        check_hyperparameters(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the contract ----------------------------------------------------------------------
    @abstractmethod
    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> MetaLearner:
        """Learn from training tasks; returns ``self``."""

    @abstractmethod
    def adapt(self, support: Task) -> AdaptedModel:
        """Return a new model adapted to ``support``; must not change ``self``."""

    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(
                f"{type(self).__name__} is not meta-trained yet; call meta_fit(train_tasks) first."
            )

    @staticmethod
    def _check_tasks(tasks: list[Task], what: str = "train_tasks") -> int:
        """Validate a task list; return the shared feature count."""
        tasks = check_task_list(tasks, what)
        if not tasks:
            raise MetamedValueError(f"{what} is empty; meta-training needs at least one task.")
        dims = {t.n_features for t in tasks}
        if len(dims) != 1:
            raise MetamedValueError(
                f"{what}: tasks have different feature counts {sorted(dims)}; preprocess all tasks "
                "with the same fitted Preprocessor."
            )
        return dims.pop()

    def _check_outcome(self, tasks: list[Task], what: str = "train_tasks") -> Outcome:
        """The one outcome type of ``tasks``, which this learner must model."""
        kinds = {t.outcome_type for t in tasks}
        if len(kinds) != 1:
            raise MetamedValueError(
                f"{what} mix outcome types {sorted(map(str, kinds))}; a learner models one "
                "outcome type: meta-train on tasks that all share it."
            )
        kind = kinds.pop()
        if kind not in self.outcome_types:
            able = learners_for(kind)
            raise MetamedValueError(
                f"{type(self).__name__} models {' and '.join(map(str, self.outcome_types))} "
                f"outcomes; {what} have a {kind} outcome. Learners for {kind} outcomes: "
                f"{', '.join(able) or 'none'}."
            )
        return kind

    def _check_support(self, support: Task, n_features: int) -> None:
        check_support_task(support)
        if support.n_features != n_features:
            raise MetamedValueError(
                f"Support set has {support.n_features} features, the learner was trained on "
                f"{n_features}. Preprocess it with the Preprocessor fitted at meta-training."
            )
        if len(support) == 0:
            raise MetamedValueError("The support set is empty; adapt needs labelled examples.")
        # A Task checks its arrays when built, but they stay writable: check again here.
        check_features(support.X, n_features, f"Support set '{support.name}' X")
        missing = ~np.isfinite(support.y)
        if missing.any():
            raise MetamedValueError(
                f"Support set '{support.name}' has {int(missing.sum())} missing (NaN or inf) "
                f"label(s) (first at row {int(np.argmax(missing))}); every support patient needs "
                "a label."
            )
        fitted = self.outcome_type_
        if support.outcome_type != fitted:
            raise MetamedValueError(
                f"{type(self).__name__} was meta-trained on a {fitted} outcome but the support "
                f"set of task '{support.name}' has a {support.outcome_type} outcome."
            )

    # -- persistence -------------------------------------------------------------------------
    def _saved_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The learned state as saved; a learner holding other learners turns them into
        plain values here (and back in :meth:`_restored_state`)."""
        return state

    def _restored_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The learned state read from an artifact, turned back into what ``meta_fit`` set."""
        return state

    def save(self, path: str | Path) -> Path:
        """Save hyperparameters and learned state as an artifact folder at ``path``.

        Tensors go to ``weights.safetensors``, everything else to ``manifest.json`` (see
        :mod:`metamed.artifacts` and ``docs/artifacts.md``); nothing is pickled.  To keep
        the preprocessing with the model, save a :class:`~metamed.learners.Pipeline`.
        Returns the folder.
        """
        return write_artifact(path, self._artifact_content())

    def _artifact_content(self) -> dict[str, Any]:
        self._check_fitted()
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        state = self._saved_state(state)
        # Callables among the hyperparameters (a ``progress`` callback) are run-time hooks,
        # not model state: they are saved as None.
        params = {k: (None if callable(v) else v) for k, v in self.get_params().items()}
        section = {
            "name": self.name,
            "class": type(self).__name__,
            "hyperparameters": params,
            "state": state,
        }
        return _content(META_LEARNER, state.get("outcome_type_"), state.get("n_features_"), section)

    @classmethod
    def load(cls, path: str | Path) -> MetaLearner:
        """Load a learner saved with :meth:`save` (call on the class or on ``MetaLearner``).

        The checksums and format version are verified first; the class is the one the
        learner registry holds under the saved name.  Raises
        :class:`~metamed.errors.ArtifactError` for a damaged or incompatible artifact.
        """
        return cls._from_artifact_content(read_artifact(path), path)

    @classmethod
    def _from_artifact_content(cls, content: dict[str, Any], path: str | Path) -> MetaLearner:
        spec = _section(content, META_LEARNER, "learner", path)
        name = spec.get("name")
        if name not in learner_names():
            known = ", ".join(sorted(LEARNERS))
            raise artifact_error(
                path,
                f"learner '{name}' is not one this metamed knows.{did_you_mean(str(name), LEARNERS)} "
                f"Known learners: {known}.",
            )
        target = LEARNERS[name]
        if spec.get("class") != target.__name__:
            raise artifact_error(
                path,
                f"learner '{name}' was saved as class {spec.get('class')}, but this metamed's "
                f"'{name}' is {target.__name__}; load it with the metamed version that saved it.",
            )
        if cls is not MetaLearner and not issubclass(target, cls):
            raise artifact_error(
                path,
                f"it holds a {target.__name__}, not a {cls.__name__}; load it with {target.__name__}.load.",
            )
        params = spec.get("hyperparameters", {})
        unknown = sorted(set(params) - set(target._param_names()))
        if unknown:
            raise artifact_error(
                path,
                f"{target.__name__} in this metamed has no hyperparameter(s) {unknown}; load it "
                "with the metamed version that saved it.",
            )
        learner = target(**params)
        try:
            state = learner._restored_state(spec.get("state", {}))
        except (KeyError, TypeError, MetamedValueError) as error:
            raise artifact_error(path, f"its learned state is incomplete ({error}).") from None
        for key, value in state.items():
            if not key.endswith("_") or key.startswith("_"):
                raise artifact_error(
                    path, f"learned state may only set attributes ending in '_', got {key!r}."
                )
            setattr(learner, key, value)
        return learner
