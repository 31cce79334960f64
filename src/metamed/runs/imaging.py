"""The imaging suite: few-shot MedMNIST as a suite file -> run folders and a results page.

``metamed benchmark --suite imaging`` reads ``runs/suites/imaging.toml`` (any suite file
with ``protocol = "imaging"`` runs here: ``--suite path.toml``)::

    title = "Few-shot medical imaging on MedMNIST"
    protocol = "imaging"             # this module's protocol (metamed.evaluation.imaging)
    shots = [1, 5, 10, 20]           # K labelled images per class
    draws = 20                       # support sets per (held-out task, K)
    seed = 0
    max_train_images = 500           # optional: training images kept per training task
                                     #   (per class in proportion, seeded; val: a quarter)
    baselines = ["linear-probe"]     # optional: the method ids paired against (default:
                                     #   every linear-probe, pooled-finetune, support-only)
    intro = ["..."]                  # optional prose at the top of the page

    [overrides]                      # optional: every method that has the setting
    network = "cnn"
    hidden_sizes = [16, 32]

    [[methods]]                      # as in a benchmark spec: name, params, label (the id
    name = "fomaml"                  #   on the page: the label, else the name)
    params = { backend = "func", inner_steps = 3 }

    [[datasets]]                     # one setting, run into out/<folder>/
    title = "..."                    # optional: the section's heading
    folder = "held-out-breastmnist"  # optional (default: held-out-<set> / corruption-<sets>)
    dataset = "medmnist"             # optional: the registered image dataset
    sets = ["breastmnist", "pneumoniamnist"]
    size = 28                        # optional: image side (64: AdrenalMNIST3D's 64^3 copy)
    held_out = "breastmnist"         # leave one set out: train on the others ...
    # ... or acquisition shift: train on these corruptions of every set, hold out those
    # train_corruptions = ["none", "blur"]
    # test_corruptions = ["speckle"]
    draws = 10                       # optional: this setting's own draws
    overrides = { hidden_sizes = [4, 8] }  # optional: win over every method's own params
    notes = ["..."]                  # optional prose under its section

Each setting loads its images (:func:`metamed.data.registry.load_dataset`, the sets and
corruptions it names), cuts them into tasks with MedMNIST's official splits
(:func:`metamed.tasks.image_tasks`) and runs the protocol of
:mod:`metamed.evaluation.imaging` one method at a time: a *cell* (meta- or pre-train on
the setting's training tasks, then adapt and score every draw of every held-out task).
A finished cell is recorded in ``out/<folder>/jobs`` (:class:`~metamed.runs.run_folder.RunFolder`),
so ``--resume`` redoes no finished (setting, method) cell; a cell's key holds its
learner's hyperparameters, so a changed method is redone.  A setting's tables
(``results.csv``, ``summary.csv``, ``paired.csv``, ``config.json``) are written all or
nothing once its cells are done, and then the page, ``out/<suite>.md`` (and
``--page``), is rewritten from the finished settings, the others listed as pending.
Every number on the page comes from the run except the anchors (MedMNIST v2's ResNet-18
with all training data; FHIST's finding), which are quoted and labelled so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort
from metamed.data.datasets.medmnist import IMAGE_SIDE, MODIFIED_NOTE, image_shape
from metamed.data.registry import dataset_folder, get_source, load_dataset
from metamed.device import current_device, device_kind, device_name, use_device
from metamed.errors import MetamedError, MetamedTypeError, MetamedValueError, did_you_mean
from metamed.evaluation.imaging import (
    ImageSetting,
    ImagingConfig,
    held_out_corruption,
    held_out_sets,
    paired_with_best_baseline,
    run_imaging_protocol,
    summarise_imaging,
)
from metamed.evaluation.protocol import Progress
from metamed.evaluation.spec import MethodSpec, check_keys
from metamed.learners.base import MetaLearner
from metamed.learners.networks import make_network
from metamed.outputs import staged_output
from metamed.runs.run_folder import (
    CellCounter,
    RunFolder,
    cell_key,
    check_suite_places,
    peak_memory_mib,
    write_suite_page,
)
from metamed.tasks import ImageTasks, Task, image_tasks

if TYPE_CHECKING:
    import torch

__all__ = [
    "ANCHOR_AUC",
    "IMAGING_BASELINES",
    "ImagingEntry",
    "ImagingSuite",
    "ImagingSuiteOutputs",
    "imaging_page",
    "run_imaging_suite",
]

#: MedMNIST v2 (Yang et al., Sci Data 2023, Table 3): ResNet-18 at 28 px trained on the
#: full official training split, test AUC.  Quoted, not run; PneumoniaMNIST's is on the
#: unmodified training split (4,708 images; ours has 3,882).
ANCHOR_AUC: dict[str, float] = {"breastmnist": 0.901, "pneumoniamnist": 0.944}

#: The learners that are baselines by default: each meta-learner is paired with the best
#: of them per (setting, task, K) cell.
IMAGING_BASELINES: tuple[str, ...] = ("linear-probe", "pooled-finetune", "support-only")

#: (dataset, sets, corruptions, size) -> the image cohort.
Loader = Callable[[str, tuple[str, ...], tuple[str, ...], int], Cohort]

_SUITE_KEYS = (
    "title", "protocol", "intro", "shots", "draws", "seed", "max_train_images", "baselines",
    "overrides", "methods", "datasets",
)  # fmt: skip
_ENTRY_KEYS = (
    "title", "folder", "dataset", "sets", "size", "held_out", "train_corruptions",
    "test_corruptions", "draws", "overrides", "notes",
)  # fmt: skip


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise MetamedTypeError(f"{where} must be a non-empty list of names, got {value!r}.")
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class ImagingEntry:
    """One setting of the suite (a ``[[datasets]]`` table), run into ``out/<folder>``.

    Either ``held_out`` (leave that set out, train on the other ``sets``) or
    ``test_corruptions`` (train on ``train_corruptions`` of every set, hold out these).
    """

    sets: tuple[str, ...]
    held_out: str | None = None
    train_corruptions: tuple[str, ...] = ("none",)
    test_corruptions: tuple[str, ...] = ()
    dataset: str = "medmnist"
    title_text: str | None = None
    folder_name: str | None = None
    draws: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: image side in pixels (voxels): 28, or 64 for AdrenalMNIST3D's 64^3 copy
    size: int = IMAGE_SIDE

    def __post_init__(self) -> None:
        where = f"setting {self.folder}"
        if (self.held_out is None) == (not self.test_corruptions):
            raise MetamedValueError(
                f"{where}: give either held_out (leave one set out) or test_corruptions "
                "(acquisition shift), not both or neither."
            )
        if self.held_out is not None:
            if self.held_out not in self.sets:
                raise MetamedValueError(
                    f"{where}: held_out '{self.held_out}' is not one of its sets."
                    f"{did_you_mean(self.held_out, self.sets)} Sets: {', '.join(self.sets)}."
                )
            if len(self.sets) < 2:
                raise MetamedValueError(f"{where}: leaving one set out needs at least two sets.")
        else:
            if "none" not in self.train_corruptions:
                raise MetamedValueError(
                    f"{where}: train_corruptions must include 'none' (the published images)."
                )
            overlap = sorted(set(self.train_corruptions) & set(self.test_corruptions))
            if overlap:
                raise MetamedValueError(
                    f"{where}: corruptions {overlap} are both trained on and held out."
                )
        if self.draws is not None and (isinstance(self.draws, bool) or int(self.draws) < 1):
            raise MetamedValueError(f"{where}: draws must be >= 1, got {self.draws}.")
        # names checked against the dataset's options ("did you mean"), before any data
        get_source(self.dataset).resolve_options(self.options)
        for name in self.sets:  # a size the set has no file of: now, not after loading
            image_shape(name, self.size)

    @property
    def options(self) -> dict[str, Any]:
        """The dataset options this entry loads with (``size`` only where it is not 28, so
        a 28-px entry loads, and its run folder is named, as before ``size`` existed)."""
        options: dict[str, Any] = {"sets": self.sets, "corruptions": self.corruptions}
        if self.size != IMAGE_SIDE:
            options["size"] = self.size
        return options

    @property
    def corruptions(self) -> tuple[str, ...]:
        """Every corruption the cohort is loaded with."""
        return ("none",) if self.held_out is not None else (
            *self.train_corruptions, *self.test_corruptions,
        )  # fmt: skip

    @property
    def folder(self) -> str:
        if self.folder_name is not None:
            return self.folder_name
        suffix = "" if self.size == IMAGE_SIDE else f"-{self.size}"
        if self.held_out is not None:
            return f"held-out-{self.held_out}{suffix}"
        return "corruption-" + "-".join(self.sets) + suffix

    @property
    def title(self) -> str:
        return self.title_text or self.folder

    def setting(self, tasks: ImageTasks) -> ImageSetting:
        """This entry's train / held-out division of ``tasks``."""
        if self.held_out is not None:
            (setting,) = [s for s in held_out_sets(tasks, self.sets) if s.test == (self.held_out,)]
            return setting
        return held_out_corruption(tasks, self.sets, self.train_corruptions, self.test_corruptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> ImagingEntry:
        if not isinstance(data, Mapping):
            raise MetamedTypeError(f"{where} must be a table.")
        check_keys(data, _ENTRY_KEYS, where)
        if "sets" not in data:
            raise MetamedValueError(f"{where} needs sets (the image sets it loads).")
        overrides = data.get("overrides", {})
        if not isinstance(overrides, Mapping):
            raise MetamedTypeError(f"{where}: overrides must be a table of settings.")
        try:
            return cls(
                sets=_names(data["sets"], f"{where}: sets"),
                held_out=None if data.get("held_out") is None else str(data["held_out"]),
                train_corruptions=_names(
                    data.get("train_corruptions", ["none"]), f"{where}: train_corruptions"
                ),
                test_corruptions=(
                    _names(data["test_corruptions"], f"{where}: test_corruptions")
                    if "test_corruptions" in data
                    else ()
                ),
                dataset=str(data.get("dataset", "medmnist")),
                size=_size(data.get("size", IMAGE_SIDE), where),
                title_text=None if "title" not in data else str(data["title"]),
                folder_name=None if "folder" not in data else str(data["folder"]),
                draws=None if "draws" not in data else int(data["draws"]),
                overrides=dict(overrides),
                notes=tuple(str(n) for n in data.get("notes", ())),
            )
        except MetamedError as error:
            message = str(error)
            raise type(error)(message if message.startswith(where) else f"{where}: {message}") from None


@dataclass(frozen=True)
class ImagingSuite:
    """What the imaging suite runs: settings, methods and the protocol."""

    entries: tuple[ImagingEntry, ...]
    methods: tuple[MethodSpec, ...]
    protocol: ImagingConfig = field(default_factory=ImagingConfig)
    #: method ids paired against (None: the methods whose learner is in IMAGING_BASELINES)
    baseline_ids: tuple[str, ...] | None = None
    #: settings applied to every method that has them, before the method's own params
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: training images kept per training task (None keeps all)
    max_train_images: int | None = 500
    name: str = "imaging"
    title: str = "Few-shot medical imaging on MedMNIST"
    intro: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.entries:
            raise MetamedValueError(f"suite {self.name} lists no setting; add [[datasets]].")
        if not self.methods:
            raise MetamedValueError(f"suite {self.name} lists no method; add [[methods]].")
        folders = [e.folder for e in self.entries]
        repeated = sorted({f for f in folders if folders.count(f) > 1})
        if repeated:
            raise MetamedValueError(
                f"suite {self.name} runs two settings into folder '{repeated[0]}'; give each "
                "its own folder."
            )
        ids = [m.id for m in self.methods]
        if len(set(ids)) != len(ids):
            raise MetamedValueError(
                f"suite {self.name} lists a method twice; give each a label of its own."
            )
        for baseline in self.baseline_ids or ():
            if baseline not in ids:
                raise MetamedValueError(
                    f"suite {self.name}: baseline '{baseline}' is not one of its methods."
                    f"{did_you_mean(baseline, ids)} Methods: {', '.join(ids)}."
                )
        if self.max_train_images is not None and int(self.max_train_images) < 2:
            raise MetamedValueError(
                f"suite {self.name}: max_train_images must be >= 2, got {self.max_train_images}."
            )
        accepted = {k for m in self.methods for k in m.learner(self.protocol.seed).get_params()}
        unused = [k for k in self.overrides if k not in accepted]
        if unused:
            raise MetamedValueError(
                f"suite {self.name}: overrides '{unused[0]}' applies to none of its methods."
                f"{did_you_mean(unused[0], sorted(accepted))}"
            )
        for entry in self.entries:  # names, values and networks, before any work
            self.learners(entry, check=True)

    @property
    def baselines(self) -> tuple[str, ...]:
        if self.baseline_ids is not None:
            return self.baseline_ids
        return tuple(m.id for m in self.methods if m.name in IMAGING_BASELINES)

    def learners(self, entry: ImagingEntry, check: bool = False) -> dict[str, MetaLearner]:
        """Unfitted learners by method id for ``entry``: the learner's defaults, the
        suite's overrides, the method's params, then the entry's overrides (a 3-D set
        needs the 3-D network for every method).  ``check``: every value, and each
        network against the entry's image shape."""
        where = f"suite {self.name}, setting {entry.folder}"
        out = {}
        for method in self.methods:
            accepted = method.learner(self.protocol.seed).get_params()
            own = {k: v for k, v in entry.overrides.items() if k in accepted}
            try:
                spec = MethodSpec(method.name, {**method.params, **own}, label=method.id)
                learner = spec.learner(self.protocol.seed, self.overrides)
                if check:
                    learner._validate_params()
                    _check_network(learner, entry)
            except MetamedError as error:
                raise type(error)(f"{where}, method {method.id}: {error}") from None
            out[method.id] = learner
        if check:
            known = {k for lr in out.values() for k in lr.get_params()}
            unused = [k for k in entry.overrides if k not in known]
            if unused:
                raise MetamedValueError(
                    f"{where}: overrides '{unused[0]}' applies to none of the suite's methods."
                    f"{did_you_mean(unused[0], sorted(known))}"
                )
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ImagingSuite:
        """A suite from its TOML tables (see the module docstring)."""
        check_keys(data, _SUITE_KEYS, f"suite {name}")
        for required in ("methods", "datasets"):
            if not isinstance(data.get(required), list) or not data[required]:
                raise MetamedTypeError(
                    f"suite {name}: {required} must be a non-empty list of [[{required}]] tables."
                )
        overrides = data.get("overrides", {})
        if not isinstance(overrides, Mapping):
            raise MetamedTypeError(f"suite {name}: overrides must be a table of settings.")
        protocol = {k: data[k] for k in ("shots", "draws", "seed") if k in data}
        if "shots" in protocol:
            protocol["shots"] = tuple(int(k) for k in protocol["shots"])
        entries = tuple(
            ImagingEntry.from_dict(entry, f"suite {name}, datasets[{i}]")
            for i, entry in enumerate(data["datasets"])
        )
        cap = data.get("max_train_images", 500)
        return cls(
            entries=entries,
            methods=tuple(_method(m) for m in data["methods"]),
            protocol=ImagingConfig(**protocol),
            baseline_ids=(
                None if "baselines" not in data else _names(data["baselines"], "baselines")
            ),
            overrides=dict(overrides),
            max_train_images=None if cap is None else int(cap),
            name=name,
            title=str(data.get("title", cls.title)),
            intro=tuple(str(line) for line in data.get("intro", ())),
        )


def _size(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetamedTypeError(f"{where}: size must be a whole number of pixels, got {value!r}.")
    return value


def _method(data: Any) -> MethodSpec:
    """A ``[[methods]]`` table; its id is its label, else its name (the page names methods
    by id, and the params are in config.json)."""
    method = MethodSpec.from_dict(data)
    return method if method.label is not None else replace(method, label=method.name)


def _check_network(learner: MetaLearner, entry: ImagingEntry) -> None:
    """A learner's network must read the entry's images (a 2-D CNN cannot read volumes)."""
    params = learner.get_params()
    if "network" not in params:
        return
    shapes = {image_shape(s, entry.size) for s in entry.sets}
    if len(shapes) > 1:
        raise MetamedValueError(
            f"its sets {', '.join(entry.sets)} have images of different shapes; a setting "
            "loads sets of one shape."
        )
    n_pixels = math.prod(shapes.pop())
    make_network(params["network"], params.get("hidden_sizes") or (), n_pixels)


@dataclass(frozen=True)
class ImagingSuiteOutputs:
    out_dir: Path
    page: Path
    summary: pd.DataFrame
    paired: pd.DataFrame
    text: str


@dataclass
class _Section:
    """One setting's finished cells, read back from its run folder."""

    entry: ImagingEntry
    setting: ImageSetting
    results: pd.DataFrame
    timings: list[dict]
    config: dict
    seconds: float = 0.0
    peak_memory_mib: float = 0.0
    #: the devices its cells computed on (as recorded in each cell's info)
    devices: set[str] = field(default_factory=set)


def run_imaging_suite(
    suite: ImagingSuite,
    out: str | os.PathLike[str],
    *,
    data_dir: str | Path | None = None,
    page: str | os.PathLike[str] | None = None,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    load: Loader | None = None,
    device: str | torch.device | None = None,
) -> ImagingSuiteOutputs:
    """Run every cell of ``suite`` not yet recorded, rewriting the page after each.

    Parameters
    ----------
    out : path
        The suite's folder; each setting runs into ``out/<folder>/``.  Every folder, the
        data files and ``page`` are checked before any work.
    load : callable, optional
        ``load(dataset, sets, corruptions) -> Cohort``; default :func:`load_dataset`
        from ``data_dir`` (tests pass self-made files).
    command : str
        The command line that regenerates the run, printed on the page.
    device : str or torch.device, optional
        Where the learners compute (``auto``, ``cpu``, ``cuda``; default: the process's
        device, :func:`metamed.device.current_device`, which ``--device`` sets).  Not part
        of a cell's key: it is recorded in each cell's info, and a resumed folder that ran
        on another device is refused (:meth:`RunFolder.check_device`).
    """
    out_dir, places = check_suite_places(
        out, [e.folder for e in suite.entries], page, resume=resume, force=force
    )
    with use_device(current_device() if device is None else device):
        if resume:
            for place in places.values():
                RunFolder.check_device(place, device_kind())
        return _run_suite(suite, out, out_dir, places, data_dir, page, force, resume, progress,
                          command, load)  # fmt: skip


def _run_suite(
    suite: ImagingSuite,
    out: str | os.PathLike[str],
    out_dir: Path,
    places: dict[str, Path],
    data_dir: str | Path | None,
    page: str | os.PathLike[str] | None,
    force: bool,
    resume: bool,
    progress: Progress | None,
    command: str | None,
    load: Loader | None,
) -> ImagingSuiteOutputs:
    if load is None:
        for dataset in sorted({e.dataset for e in suite.entries}):
            dataset_folder(dataset, data_dir)  # every file present

        def load(
            dataset: str, sets: tuple[str, ...], corruptions: tuple[str, ...], size: int
        ) -> Cohort:
            options = {"size": size} if size != IMAGE_SIDE else {}
            return load_dataset(dataset, data_dir, sets=sets, corruptions=corruptions, **options)

    command = command or f"metamed benchmark --suite {suite.name} --out {out}"
    counter = CellCounter(progress, len(suite.entries) * len(suite.methods))
    sections: list[_Section] = []

    outputs = None
    for entry in suite.entries:  # the page after each setting: a stopped run leaves one
        sections.append(_run_entry(suite, entry, places[entry.folder], load, force, resume, counter))
        outputs = _write_page(suite, out_dir, sections, command, page)
    assert outputs is not None  # a suite has at least one setting
    return outputs


def _capped(task: Task, cap: int, rng: np.random.Generator) -> Task:
    """At most ``cap`` rows of ``task``, drawn per class in proportion (sorted)."""
    if len(task) <= cap:
        return task
    keep = []
    for label in (0.0, 1.0):
        members = np.flatnonzero(task.y == label)
        n = max(1, int(round(cap * len(members) / len(task))))
        keep.append(rng.choice(members, min(n, len(members)), replace=False))
    return task.subset(np.sort(np.concatenate(keep)))


def _cap_training(tasks: ImageTasks, setting: ImageSetting, cap: int | None, seed: int):
    """The image tasks with every *training* task's train and val splits capped."""
    if cap is None:
        return tasks
    rng = np.random.default_rng([seed, 3])
    train, val = dict(tasks.train), dict(tasks.val)
    for name in sorted(setting.train):
        train[name] = _capped(train[name], cap, rng)
        if name in val:
            val[name] = _capped(val[name], max(cap // 4, 10), rng)
    return replace(tasks, train=train, val=val)


def _data_identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The cohort's provenance as a run folder's identity holds it: the ``size`` option
    only where it is not 28, so every folder run before the option existed still resumes
    (and a 64^3 run's folder is another run)."""
    data = json.loads(json.dumps(provenance, default=str))
    options = data.get("dataset", {}).get("options", {})
    if options.get("size") == IMAGE_SIDE:
        del options["size"]
    return data


def _run_entry(
    suite: ImagingSuite,
    entry: ImagingEntry,
    place: Path,
    load: Loader,
    force: bool,
    resume: bool,
    counter: CellCounter,
) -> _Section:
    protocol = (
        suite.protocol if entry.draws is None else dataclasses.replace(suite.protocol, draws=entry.draws)
    )
    start = time.perf_counter()
    cohort = load(entry.dataset, entry.sets, entry.corruptions, entry.size)
    tasks = image_tasks(cohort)
    setting = entry.setting(tasks)
    tasks = _cap_training(tasks, setting, suite.max_train_images, protocol.seed)
    loaded = time.perf_counter() - start
    learners = suite.learners(entry)
    baselines = [b for b in suite.baselines if b in learners]
    config: dict[str, Any] = {
        "setting": asdict(setting),
        "dataset": entry.dataset,
        "sets": list(entry.sets),
        "size": entry.size,
        "corruptions": list(entry.corruptions),
        "image_shape": list(tasks.image_shape),
        "protocol": asdict(protocol),
        "max_train_images": suite.max_train_images,
        "baselines": baselines,
        "train_images": {n: len(tasks.train[n]) for n in setting.train},
        "modified": cohort.provenance.get("modified"),
        "data": cohort.provenance.get("dataset"),
    }
    section = _Section(
        entry, setting, pd.DataFrame(),
        [{"step": "load, corrupt and cut into tasks", "seconds": loaded}], config,
    )  # fmt: skip
    identity = {
        "suite": "imaging",
        "dataset": entry.dataset,
        "setting": asdict(setting),
        "data": _data_identity(cohort.provenance),
        "protocol": asdict(protocol),
        "max_train_images": suite.max_train_images,
    }
    replace_old = force and place.is_dir() and any(place.iterdir())
    tables = []
    device = device_kind()
    with RunFolder.open(place, identity, resume=resume, replace=replace_old, device=device) as folder:
        for method, learner in learners.items():
            key = cell_key(method, learner)
            recorded = folder.cell(key)
            if recorded is None:
                result = run_imaging_protocol(
                    tasks, [setting], {method: learner}, protocol,
                    lambda what: counter.say(f"{entry.folder}: {what}"),
                )  # fmt: skip
                run_key = f"{setting.name} | {method}"
                info = {
                    "fit_seconds": result.fit_seconds[run_key],
                    "adapt_seconds": result.adapt_seconds[run_key],
                    "device": device_name(),  # provenance, not the key (one device a folder)
                }
                folder.record_cell(key, result.results, info)
                recorded = (result.results, info)
            else:
                counter.say(f"{entry.folder}: {method} recorded already (resumed)")
            table, info = recorded
            tables.append(table)
            section.results = pd.concat(tables, ignore_index=True)
            section.devices.add(str(info.get("device", "cpu")))  # older records: the CPU
            section.timings += [
                {"step": f"train {method}", "seconds": info["fit_seconds"]},
                {"step": f"adapt + score {method}", "seconds": info["adapt_seconds"]},
            ]
            counter.done += 1
            counter.say(f"{entry.folder}: {method} done")
        section.seconds = sum(t["seconds"] for t in section.timings)
        section.peak_memory_mib = peak_memory_mib()
        summary = summarise_imaging(section.results, seed=protocol.seed)
        paired = paired_with_best_baseline(section.results, baselines, seed=protocol.seed)
        with staged_output(place, merge=not folder.deferred) as staging:
            folder.write_into(staging)
            section.results.to_csv(staging / "results.csv", index=False)
            summary.to_csv(staging / "summary.csv", index=False)
            paired.to_csv(staging / "paired.csv", index=False)
            (staging / "config.json").write_text(
                json.dumps(
                    {**config, "methods": {m: cell_key(m, lr) for m, lr in learners.items()},
                     "timings": section.timings, "peak_memory_mib": section.peak_memory_mib,
                     "devices": sorted(section.devices)},
                    indent=2, default=str,
                )  # fmt: skip
            )
    return section


def _write_page(
    suite: ImagingSuite,
    out_dir: Path,
    sections: list[_Section],
    command: str,
    page: str | os.PathLike[str] | None,
) -> ImagingSuiteOutputs:
    results = [s.results for s in sections if len(s.results)]
    table = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    seed = suite.protocol.seed
    summary = summarise_imaging(table, seed=seed) if len(table) else pd.DataFrame()
    paired = (
        paired_with_best_baseline(table, list(suite.baselines), seed=seed)
        if len(table)
        else pd.DataFrame()
    )
    text = imaging_page(suite, sections, summary, paired, command)
    tables = {"summary.csv": summary, "paired.csv": paired}
    page_path = write_suite_page(out_dir, suite.name, text, tables, page)
    return ImagingSuiteOutputs(out_dir, page_path, summary, paired, text)


def _cell(row: pd.Series) -> str:
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _table(summary: pd.DataFrame, setting: str, task: str, metric: str, shots, methods):
    lines = [
        "| method | " + " | ".join(f"K = {k}" for k in shots) + " |",
        "|---|" + "---|" * len(shots),
    ]
    view = summary[
        (summary["setting"] == setting) & (summary["task"] == task) & (summary["metric"] == metric)
    ]
    for method in methods:
        cells = []
        for k in shots:
            row = view[(view["method"] == method) & (view["k"] == k)]
            cells.append(_cell(row.iloc[0]) if len(row) else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _winner_sentences(summary: pd.DataFrame, paired: pd.DataFrame, baselines, shots) -> list[str]:
    """Per (setting, task, K): the best method by mean AUROC, and whether any meta-learner
    beats the best baseline with a paired interval above zero."""
    lines = []
    view = summary[summary["metric"] == "auroc"]
    for (setting, task), cell in view.groupby(["setting", "task"], sort=False):
        for k in shots:
            at_k = cell[cell["k"] == k]
            if at_k.empty:
                continue
            top = at_k.sort_values("mean", ascending=False).iloc[0]
            kind = "a baseline" if top["method"] in baselines else "a meta-learner"
            pairs = (
                paired
                if paired.empty
                else paired[(paired["setting"] == setting) & (paired["task"] == task)
                            & (paired["k"] == k)]
            )  # fmt: skip
            better = [] if pairs.empty else pairs[pairs["ci_low"] > 0]["method"].tolist()
            worse = [] if pairs.empty else pairs[pairs["ci_high"] < 0]["method"].tolist()
            base = pairs["baseline"].iloc[0] if len(pairs) else "-"
            verdict = (
                f"{', '.join(better)} beat{'s' if len(better) == 1 else ''} the best baseline "
                f"({base})"
                if better
                else f"no meta-learner beats the best baseline ({base})"
            )
            if worse:
                verdict += f"; {', '.join(worse)} lose{'s' if len(worse) == 1 else ''} to it"
            lines.append(
                f"- {setting}, `{task}`, K = {k}: best {top['method']} ({kind}, AUROC "
                f"{top['mean']:.3f}); {verdict} (paired 95 % CI over draws)."
            )
    return lines


def _network_words(suite: ImagingSuite, sections: Sequence[_Section]) -> str:
    nets = []
    for section in sections:
        learner = next(iter(suite.learners(section.entry).values()))
        params = learner.get_params()
        if "network" in params:
            nets.append(
                f"`{section.entry.folder}`: {params['network']} "
                f"{tuple(params.get('hidden_sizes') or ())}"
            )
    return "; ".join(dict.fromkeys(nets))


def imaging_page(
    suite: ImagingSuite,
    sections: Sequence[_Section],
    summary: pd.DataFrame,
    paired: pd.DataFrame,
    command: str,
) -> str:
    """The results page in Markdown: our numbers, the paired comparison, anchors and times."""
    shots = sorted(suite.protocol.shots)
    methods = [m.id for m in suite.methods]
    baselines = suite.baselines
    meta = [m for m in methods if m not in baselines]
    proto = suite.protocol
    finished = {s.entry.folder for s in sections if set(s.results.get("method", ())) >= set(methods)}
    pending = [e.title for e in suite.entries if e.folder not in finished]
    uses_pneumonia = any("pneumoniamnist" in e.sets for e in suite.entries)
    lines = [f"# {suite.title}", ""]
    if suite.intro:
        lines += [*suite.intro, ""]
    if pending:
        lines += [
            f"**Not finished in this run:** {', '.join(pending)} (rerun the command with "
            "`--resume` to continue; finished cells are not redone).",
            "",
        ]
    lines += [
        f"Regenerate: `{command}`",
        "",
        "Every number below comes from that command's run folders (`summary.csv`, "
        "`paired.csv`, `results.csv`, `config.json` per setting) except the **anchors**, "
        "quoted from the papers and labelled so.",
        "",
    ]
    if uses_pneumonia:
        lines += [f"**{MODIFIED_NOTE}**", ""]
    lines += [
        "- Images: intensities in [0, 1], one channel; 1 = the finding. MedMNIST's official "
        "splits: training reads the training tasks' train split (val split for early "
        "stopping), a held-out task's K support images per class come from its train split "
        "and its whole official test split is scored.",
        f"- Networks (trained from scratch here; no pretrained weights can be downloaded): "
        f"{_network_words(suite, sections) or '-'}.",
        (
            f"- Training images capped at {suite.max_train_images} per training task (per "
            "class in proportion, seeded)."
            if suite.max_train_images
            else "- All training images used."
        ),
        f"- Episodes: K = {', '.join(map(str, shots))} per class, {proto.draws} draws per "
        f"(held-out task, K) unless a setting says otherwise, seed {proto.seed}; every "
        "method sees the same support images. Mean over draws [95 % bootstrap CI over draws].",
        "- Corruptions: `src/metamed/data/images.py` (seeded).",
        f"- Baselines: {', '.join(baselines)}; meta-learners: {', '.join(meta) or '-'}. Each "
        "meta-learner is paired with the best baseline of its cell (highest mean AUROC), "
        "draw by draw.",
        "",
        "## Which wins",
        "",
        *(_winner_sentences(summary, paired, baselines, shots) if len(summary) else ["- nothing finished yet."]),
        "",
    ]
    for section in sections:
        lines += [f"## {section.entry.title}", ""]
        lines += [
            f"Setting `{section.setting.name}`: trained on {', '.join(section.setting.train)}; "
            f"held out {', '.join(section.setting.test)}. Run folder `{section.entry.folder}/`.",
            "",
        ]
        if section.entry.draws is not None:
            lines += [f"{section.entry.draws} draws per (held-out task, K) here.", ""]
        for task in section.setting.test:
            if summary.empty:
                continue
            lines += [f"### `{task}`", "", "AUROC:", ""]
            lines += _table(summary, section.setting.name, task, "auroc", shots, methods)
            base = task.split("/")[0]
            if base in ANCHOR_AUC and "/" not in task:
                lines.append(
                    "| *anchor: ResNet-18, all training data (MedMNIST v2)* | "
                    + " | ".join(f"{ANCHOR_AUC[base]:.3f}" for _ in shots)
                    + " |"
                )
            lines += ["", "Accuracy at P = 0.5:", ""]
            lines += _table(summary, section.setting.name, task, "accuracy", shots, methods)
            lines += [""]
        if section.entry.notes:
            lines += [*section.entry.notes, ""]
    lines += [
        "## Paired with the best baseline (AUROC difference, 95 % CI over draws)",
        "",
        "| setting | task | K | method | best baseline | difference |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in paired.iterrows():
        lines.append(
            f"| {r['setting']} | `{r['task']}` | {r['k']} | {r['method']} | {r['baseline']} | "
            f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] |"
        )
    lines += [
        "",
        "## Anchors (quoted, not run)",
        "",
        "- MedMNIST v2 (Yang et al., Sci Data 2023, Table 3): ResNet-18 at 28 px trained on "
        "the full official training split, test AUC 0.901 (BreastMNIST) and 0.944 "
        "(PneumoniaMNIST, unmodified training split): the ceiling with all labelled data, "
        "not a few-shot number.",
        "- FHIST (Shakeri et al. 2022): in few-shot histology, fine-tuning with "
        "regularisation matches or beats episodic meta-learning. The section *Which wins* "
        "says whether that holds here.",
        "",
        "## Times and memory (this machine)",
        "",
        "Train and adapt + score times are those of the run that computed each cell (a "
        "resumed run reads them from the records); a setting's total adds this run's load "
        "time. Peak memory is the process's peak resident memory when the setting finished "
        "(the settings run one after another in one process, so it never goes down).",
        "",
        f"Computed on: {', '.join(sorted(set().union(*(s.devices for s in sections)))) or '-'} "
        "(`--device`; each cell records its device).",
        "",
        "| setting | step | seconds |",
        "|---|---|---|",
    ]
    for section in sections:
        for row in section.timings:
            lines.append(f"| {section.entry.folder} | {row['step']} | {row['seconds']:.1f} |")
        lines.append(
            f"| {section.entry.folder} | **total** (peak memory {section.peak_memory_mib:,.0f} "
            f"MiB) | **{section.seconds:.1f}** |"
        )
    lines.append("")
    return "\n".join(lines)
