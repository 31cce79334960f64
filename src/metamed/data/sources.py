"""Dataset registry: what each dataset is, where it comes from, how to check and load it.

Every dataset metamed knows is one :class:`DatasetSource`: its origin, licence and
citation, the files it consists of (relative name, sha256, size and public download URL
where one exists), the folder it lives in under the data directory, and the loader
that turns those files into a :class:`~metamed.data.Cohort`.  Datasets without a loader
yet are still listed (``metamed datasets`` shows them, ``verify`` checks their files),
so that a user can see what is available and cite it.

The data directory is ``data_dir`` when given, else the ``METAMED_DATA_DIR``
environment variable.  Dataset files are never shipped with metamed: fetch them with
``metamed data fetch <name> --dest DIR``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from metamed.data.cohort import Cohort
from metamed.data.synthetic import make_synthetic_cohort
from metamed.data.uci_heart import (
    UCI_HEART_CITATION,
    UCI_HEART_FOLDER,
    UCI_HEART_HOMEPAGE,
    UCI_HEART_LICENCE,
    load_uci_heart,
)
from metamed.errors import (
    ChecksumError,
    DataNotFoundError,
    MetamedValueError,
    unknown_name,
)

__all__ = [
    "DATA_DIR_ENV",
    "DATASETS",
    "DataFile",
    "DatasetSource",
    "dataset_folder",
    "dataset_names",
    "fetch_command",
    "get_source",
    "load_dataset",
    "register_source",
    "resolve_data_dir",
    "sha256_file",
    "verify",
]

#: Environment variable naming the directory that holds one folder per dataset.
DATA_DIR_ENV = "METAMED_DATA_DIR"

#: A loader receives the dataset's folder (``None`` for datasets without files).
Loader = Callable[[Path | None], Cohort]


class DataFile(NamedTuple):
    """One file of a dataset.

    Attributes
    ----------
    name : str
        Path relative to the dataset folder.
    sha256 : str
        Hex digest of the published file.
    size_bytes : int
        Size of the published file.
    url : str or None
        Public download URL of exactly these bytes, or ``None`` when the file was
        repackaged (e.g. gzip-compressed) and has no public byte-identical copy.
    """

    name: str
    sha256: str
    size_bytes: int
    url: str | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A dataset metamed knows: provenance, files and loader.

    Parameters
    ----------
    name : str
        Short name used on the command line (``uci-heart``).
    title, description : str
        One-line title and a short description (tasks, outcome).
    licence, citation, homepage : str
        Terms of use, how to cite, where to read more.
    folder : str
        Folder of the files under the data directory (empty for no files).
    files : tuple of DataFile
    loader : callable or None
        ``loader(folder) -> Cohort``; ``None`` while metamed cannot load it yet.
    n_patients, n_tasks : int or None
        Size of the cohort as loaded (``None`` where it depends on the task definition).
    """

    name: str
    title: str
    description: str
    licence: str
    citation: str
    homepage: str
    folder: str = ""
    files: tuple[DataFile, ...] = ()
    loader: Loader | None = field(default=None, compare=False, repr=False)
    n_patients: int | None = None
    n_tasks: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(DataFile(*f) for f in self.files))
        if self.files and not self.folder:
            raise MetamedValueError(f"Dataset '{self.name}' lists files but no folder.")

    @property
    def loadable(self) -> bool:
        """Whether :func:`load_dataset` can build a cohort from this dataset."""
        return self.loader is not None

    @property
    def size_bytes(self) -> int:
        """Total size of the dataset's files."""
        return sum(f.size_bytes for f in self.files)


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so that large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def fetch_command(name: str) -> str:
    """The shell command that downloads dataset ``name``."""
    return f"metamed data fetch {name} --dest DIR"


_UCI_HEART_ARCHIVE = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease"


def _raw_github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _load_synthetic(_folder: Path | None) -> Cohort:
    return make_synthetic_cohort()


def _load_uci_heart(folder: Path | None) -> Cohort:
    return load_uci_heart(folder)


DATASETS: dict[str, DatasetSource] = {}


def register_source(source: DatasetSource, replace: bool = False) -> DatasetSource:
    """Add ``source`` to :data:`DATASETS` (e.g. from a module adding a new loader).

    Raises
    ------
    MetamedValueError
        The name is taken and ``replace`` is False.
    """
    if source.name in DATASETS and not replace:
        raise MetamedValueError(
            f"A dataset named '{source.name}' is already registered; pass replace=True to "
            "swap it (for example to attach a loader to a listed dataset)."
        )
    DATASETS[source.name] = source
    return source


register_source(
    DatasetSource(
        name="synthetic",
        title="Synthetic multi-site cohort (simulated)",
        description=(
            "Seeded simulation: 8 sites x 200 patients sharing one logistic risk model with "
            "site-specific weights, intercepts (prevalence shift) and feature means (covariate "
            "shift); 8 numeric features with 5 % missing cells and one categorical column. "
            "Built in, no files."
        ),
        licence="generated data; no restrictions",
        citation="metamed synthetic multi-task generator (metamed.data.synthetic)",
        homepage="",
        loader=_load_synthetic,
        n_patients=1600,
        n_tasks=8,
    )
)

register_source(
    DatasetSource(
        name="uci-heart",
        title="UCI Heart Disease, four sites",
        description=(
            "Coronary angiography cohorts from Cleveland, Budapest (Hungarian), Zurich/Basel "
            "(Switzerland) and Long Beach (VA), 1980s; 13 clinical attributes; outcome: "
            "angiographic disease (num > 0). Tasks: the 4 sites."
        ),
        licence=UCI_HEART_LICENCE,
        citation=UCI_HEART_CITATION,
        homepage=UCI_HEART_HOMEPAGE,
        folder=UCI_HEART_FOLDER,
        files=(
            DataFile(
                "processed.cleveland.data",
                "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
                18461,
                f"{_UCI_HEART_ARCHIVE}/processed.cleveland.data",
            ),
            DataFile(
                "processed.hungarian.data",
                "d1ad108f785768cd3d7e82dc522e6f5a61eea93cccfb3a46ee8076f73fc3d796",
                10263,
                f"{_UCI_HEART_ARCHIVE}/processed.hungarian.data",
            ),
            DataFile(
                "processed.switzerland.data",
                "834a405ccf5b66ab4056bb77794adc8df0b7125186454c0a1d002d33c6c3b314",
                4109,
                f"{_UCI_HEART_ARCHIVE}/processed.switzerland.data",
            ),
            DataFile(
                "processed.va.data",
                "e7c93d8d0d2acdadfa4c5e8de768e2191e7f618b952e29623f1f0d5949ff6b8f",
                6737,
                f"{_UCI_HEART_ARCHIVE}/processed.va.data",
            ),
        ),
        loader=_load_uci_heart,
        n_patients=920,
        n_tasks=4,
    )
)

# Datasets listed with their files and checksums but no loader yet.  Files copied
# byte for byte from a pinned public repository commit get that raw URL; repackaged
# files (gzip-compressed, converted from another format) have none.
register_source(
    DatasetSource(
        name="diabetes-130",
        title="Diabetes 130-US hospitals 1999-2008 (readmission)",
        description="101,766 inpatient encounters of diabetic patients (Cerner Health Facts); outcome: readmission < 30 days; no hospital id, condition tasks from the primary ICD-9 diagnosis.",
        licence="CC BY 4.0",
        citation="Strack B, DeShazo JP, Gennings C, et al. Impact of HbA1c measurement on hospital readmission rates. BioMed Res Int. 2014:781670. UCI Machine Learning Repository, https://doi.org/10.24432/C5230J",
        homepage="https://archive.ics.uci.edu/dataset/296",
        folder="diabetes-130-us-hospitals",
        files=(
            DataFile(
                "IDs_mapping.csv",
                "f1bb82b471cb34649352597572c9b1fb00bd27f77b9f5a22a03dc3eb1039749e",
                2547,
            ),
            DataFile(
                "diabetic_data.csv.gz",
                "356486d63457b04802fd827134ba7234a8d58d96b2bf0c1448f2b52221b4d0a1",
                3031652,
            ),
        ),
        n_patients=101766,
        n_tasks=None,
    )
)

register_source(
    DatasetSource(
        name="eicu-demo",
        title="eICU Collaborative Research Database demo v2.0",
        description="2,520 ICU unit stays from 186 US hospitals (2014-2015); outcomes: hospital / ICU mortality, length of stay; tasks: hospitals, regions, ICU types.",
        licence="ODbL 1.0",
        citation="Johnson A, Pollard T, Badawi O, Raffa J. eICU Collaborative Research Database Demo (v2.0). PhysioNet. Pollard TJ et al. Sci Data 2018;5:180178.",
        homepage="https://physionet.org/content/eicu-crd-demo/2.0/",
        folder="eicu-crd-demo",
        files=(
            DataFile(
                "admissiondrug.csv.gz",
                "513000e53e445f626b167e39dfa00322a2d0609a336fda0f77655bca84e201be",
                81396,
            ),
            DataFile(
                "admissiondx.csv.gz",
                "7212a12000161f85f5644d4eefbb45d9b664bbea30fe4d237c57b17a423896ab",
                94050,
            ),
            DataFile(
                "allergy.csv.gz",
                "6acd53773ede538d6d65d6d7aaa6619149bb3f76379907353e92f5ea59c62479",
                34880,
            ),
            DataFile(
                "apacheapsvar.csv.gz",
                "9bdf7a79e7a11bae3d478257095fabe17a8a82935d984d26bcff6dac3d0069bf",
                69758,
            ),
            DataFile(
                "apachepatientresult.csv.gz",
                "4fc2276b544e11e634c0317c1682904975b3820f92cdb1fc40b6f7397474cf5a",
                214559,
            ),
            DataFile(
                "apachepredvar.csv.gz",
                "ab4ae2e3d08a7924141f77c48860a1da0106addabd948e57f379fd8447cd53f1",
                50870,
            ),
            DataFile(
                "careplancareprovider.csv.gz",
                "de4e28a0373b8a61468793107196213f5d1bde913e3b6003591db4c405def0a7",
                56029,
            ),
            DataFile(
                "careplaneol.csv.gz",
                "080e846e1d1f523d00e2a96cb9972b767d1f5e2d903f8b13ad4a49447f29b937",
                295,
            ),
            DataFile(
                "careplangeneral.csv.gz",
                "18b50e862aa5f7b7fef14ee2714949ec0ea8ddfc9c11677eedc63789b6de9d5d",
                354882,
            ),
            DataFile(
                "careplangoal.csv.gz",
                "6655b1ef8b016b3f88a9dd86688ef62d760d69fb4fb2455b8eec1a29753c340d",
                30615,
            ),
            DataFile(
                "careplaninfectiousdisease.csv.gz",
                "cfc600c8f3641d069d745a47e5d72bd0064b97b67905e49d59f70a27ca86cd55",
                1560,
            ),
            DataFile(
                "customlab.csv.gz",
                "1f8064cf5ec2a4c40a42c7668adc0fc48f6940b6c573bf048af80834ac43cdd9",
                634,
            ),
            DataFile(
                "diagnosis.csv.gz",
                "a295dcd12b38f2c8f550de069a4f8fd2350a94f2c8c5c2a630c8307b5c81f8e3",
                352200,
            ),
            DataFile(
                "hospital.csv.gz",
                "23531ec3692a756be5559259917c9244e550d34eaadf637f18f1ec34c83147dd",
                780,
            ),
            DataFile(
                "infusiondrug.csv.gz",
                "2e691ca04bc16791d49ad1549d9978e74a234952670677e8489c0ebb5c0b202d",
                387901,
            ),
            DataFile(
                "intakeoutput.csv.gz",
                "67a350818c6de6e7542db4b1367d87ca69a6c65f7c65c546f4334131b02271e7",
                1694149,
            ),
            DataFile(
                "medication.csv.gz",
                "dbd8239e217143ebfe8219e881c814700809b5a422eb282e5677480ce204cf41",
                1420223,
            ),
            DataFile(
                "microlab.csv.gz",
                "5e23ac0527439b505f20ec2cce71090e231bd720e9f252683b32c58512765540",
                3525,
            ),
            DataFile(
                "note.csv.gz",
                "d2e86ffd08a20f2cc2c5bce780434ca79e604d13a2cb694288b0dff4dcdb829e",
                262677,
            ),
            DataFile(
                "nurseassessment.csv.gz",
                "dcfb2d15204cb965a962b6223cefdc758a2387faa63bb2696ca157267e6d27c9",
                1063573,
            ),
            DataFile(
                "nursecare.csv.gz",
                "9059eb059fb4de411020db131ec654fae8fb4d38f8d3a49674936c1b1567ef4a",
                460758,
            ),
            DataFile(
                "pasthistory.csv.gz",
                "f98abd9f7d21cbbfe516085d9950fb87e649cef69bf357d395af196606988b7c",
                140537,
            ),
            DataFile(
                "patient.csv.gz",
                "97d04ec58895219406f9e571b65d0474c850cf4d33d4496981c27a98936d7b89",
                133538,
            ),
            DataFile(
                "physicalexam.csv.gz",
                "43261173ea4e5c8e0280032c176c88227da2628832a572f7597870d6afebe92b",
                777834,
            ),
            DataFile(
                "respiratorycare.csv.gz",
                "18523c1332a975dead1f339c67b903c1aea3917a85b3b9f1e386481ce50c61d1",
                53402,
            ),
            DataFile(
                "respiratorycharting.csv.gz",
                "c8592908bcf7bf6d21fe5854ea1aeaf6226958646cbb4d76fa85a40915242ade",
                1607574,
            ),
            DataFile(
                "treatment.csv.gz",
                "a3aaee033aee140d66da6aca0df3f9e291d9975279bf1bc78a92779c2b8b13d9",
                458989,
            ),
            DataFile(
                "vitalaperiodic.csv.gz",
                "800210357151c00b866f32e2bc204f8c1a6bea66e746fbb275c80fcec8b74a17",
                2664121,
            ),
        ),
        n_patients=2520,
        n_tasks=186,
    )
)

register_source(
    DatasetSource(
        name="iwpc-warfarin",
        title="IWPC warfarin pharmacogenetics cohort",
        description="6,256 warfarin-treated patients from 22 sites with CYP2C9/VKORC1 genotypes; outcome: stable therapeutic dose (mg/week); tasks: project sites.",
        licence="CC BY-SA 4.0",
        citation="International Warfarin Pharmacogenetics Consortium. Estimation of the warfarin dose with clinical and pharmacogenetic data. N Engl J Med 2009;360:753-764. PharmGKB.",
        homepage="https://www.pharmgkb.org/downloads",
        folder="iwpc-warfarin",
        files=(
            DataFile(
                "iwpc.csv.gz",
                "ada0d2650fbf6f81d89f56e93cd65d2aa7fd13cbc9eb9f312839bd7c3f308425",
                207842,
            ),
        ),
        n_patients=6256,
        n_tasks=22,
    )
)

register_source(
    DatasetSource(
        name="moleculenet",
        title="MoleculeNet Tox21, ToxCast, SIDER, ClinTox, MUV",
        description="SMILES with binary labels for many assays / endpoints; each assay is a task (few-shot molecular property prediction).",
        licence="mixed: public domain (Tox21, ToxCast, MUV), CC BY-NC-SA 4.0 (SIDER), none stated (ClinTox)",
        citation="Wu Z, Ramsundar B, Feinberg EN, et al. MoleculeNet: a benchmark for molecular machine learning. Chem Sci 2018;9:513-530.",
        homepage="https://moleculenet.org",
        folder="moleculenet",
        files=(
            DataFile(
                "clintox.csv",
                "cc561402d058a0d996a9f5e5d02bc20f6652b7003525b32c3598b8da4b24e9b7",
                94829,
                _raw_github(
                    "chemprop/chemprop",
                    "b83635bcddaddcdb91d453128edec9f2be0d25cf",
                    "data/clintox.csv",
                ),
            ),
            DataFile(
                "muv.csv.gz",
                "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
                1329782,
                _raw_github(
                    "chemprop/chemprop",
                    "b83635bcddaddcdb91d453128edec9f2be0d25cf",
                    "data/muv.csv.gz",
                ),
            ),
            DataFile(
                "sider.csv",
                "71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
                183743,
                _raw_github(
                    "chemprop/chemprop",
                    "b83635bcddaddcdb91d453128edec9f2be0d25cf",
                    "data/sider.csv",
                ),
            ),
            DataFile(
                "tox21.csv",
                "b58cc1f683e78e3c7a1bf7116e9aac0119804018d100f7b8cdb0857941c31aca",
                458635,
                _raw_github(
                    "chemprop/chemprop",
                    "b83635bcddaddcdb91d453128edec9f2be0d25cf",
                    "data/tox21.csv",
                ),
            ),
            DataFile(
                "toxcast.csv.gz",
                "4b9b4366b02ce7ec7a0831d60f8c46f153c53c5e122376df887476240496abd4",
                403733,
                _raw_github(
                    "chemprop/chemprop",
                    "b83635bcddaddcdb91d453128edec9f2be0d25cf",
                    "data/toxcast.csv.gz",
                ),
            ),
        ),
        n_patients=None,
        n_tasks=None,
    )
)

register_source(
    DatasetSource(
        name="physionet-2012",
        title="PhysioNet/CinC Challenge 2012 (ICU mortality), per-stay features",
        description="8,000 adult ICU stays (MIMIC-II, sets A and B) summarised from the first 48 h; outcome: in-hospital death; tasks: ICU type (MICU, SICU, CSRU, CCU).",
        licence="ODC-By 1.0",
        citation="Silva I, Moody G, Scott DJ, Celi LA, Mark RG. Predicting in-hospital mortality of ICU patients: the PhysioNet/Computing in Cardiology Challenge 2012. Comput Cardiol 2012;39:245-248.",
        homepage="https://physionet.org/content/challenge-2012/1.0.0/",
        folder="physionet-challenge-2012",
        files=(
            DataFile(
                "PhysionetChallenge2012-set-a.csv.gz",
                "8f92794cb8ecc4e61ba5aea6ab4b5d983e9aa362a15d10ba41c09b86bfb09894",
                545747,
                _raw_github(
                    "alistairewj/challenge2012",
                    "79f7b08494f95fa43b20eac3e36f424d5ee78f1d",
                    "data/PhysionetChallenge2012-set-a.csv.gz",
                ),
            ),
            DataFile(
                "PhysionetChallenge2012-set-b.csv.gz",
                "78339c5a7f30021c44d51618df2fb64d577536f420180f39f21e87d422a709e0",
                547008,
                _raw_github(
                    "alistairewj/challenge2012",
                    "79f7b08494f95fa43b20eac3e36f424d5ee78f1d",
                    "data/PhysionetChallenge2012-set-b.csv.gz",
                ),
            ),
        ),
        n_patients=8000,
        n_tasks=4,
    )
)

register_source(
    DatasetSource(
        name="support2",
        title="SUPPORT (support2) seriously ill hospitalised adults",
        description="9,105 patients in 8 disease groups at five US centres (1989-1994); outcomes: hospital death, death with follow-up time; tasks: disease groups.",
        licence="CC BY 4.0",
        citation="Knaus WA, Harrell FE, Lynn J, et al. The SUPPORT prognostic model. Ann Intern Med 1995;122:191-203.",
        homepage="https://hbiostat.org/data/",
        folder="support2",
        files=(
            DataFile(
                "support2.csv.gz",
                "3a7ba480e80374046f9e77f0abd1a5e3afa4d6fd90cebfda35cfbbd49c2bfa91",
                674215,
            ),
        ),
        n_patients=9105,
        n_tasks=8,
    )
)

register_source(
    DatasetSource(
        name="tcga-brca",
        title="TCGA-BRCA clinical table (FLamby Fed-TCGA-BRCA)",
        description="1,096 breast-cancer patients, 39 clinical covariates, overall survival (E, T); tasks: 6 geographic regions of the tissue source sites.",
        licence="TCGA open access (NCI GDC); FLamby preprocessing MIT",
        citation="The Cancer Genome Atlas Network; du Terrail JO et al. FLamby: datasets and benchmarks for cross-silo federated learning in realistic healthcare settings. NeurIPS 2022 Datasets and Benchmarks.",
        homepage="https://github.com/owkin/FLamby",
        folder="tcga-brca-flamby",
        files=(
            DataFile(
                "brca.csv",
                "07cb53423f7d579d33cfdbf2cba57b2aee75318b85866c68ce39a75b1f1ba020",
                113184,
                _raw_github(
                    "owkin/FLamby",
                    "edacf54d5211520583b0133d55ac39b6fda8324b",
                    "flamby/datasets/fed_tcga_brca/brca.csv",
                ),
            ),
            DataFile(
                "centers.csv",
                "d610df2dae0203ea229c9579747ed3eb8d28e137c5378f55acc6fe6b4632bb1d",
                4274,
                _raw_github(
                    "owkin/FLamby",
                    "edacf54d5211520583b0133d55ac39b6fda8324b",
                    "flamby/datasets/fed_tcga_brca/centers.csv",
                ),
            ),
            DataFile(
                "train_test_split.csv",
                "1249c6543a4060ff0fdaf8510fc37017755836db6c9fc5e6af96057c36510990",
                28946,
                _raw_github(
                    "owkin/FLamby",
                    "edacf54d5211520583b0133d55ac39b6fda8324b",
                    "flamby/datasets/fed_tcga_brca/dataset_creation_scripts/train_test_split.csv",
                ),
            ),
        ),
        n_patients=1096,
        n_tasks=6,
    )
)

register_source(
    DatasetSource(
        name="r-multisite-trials",
        title="Multi-centre trial tables from R data packages",
        description="Five small trials / registries with a centre column (OPT, indomethacin RCT, CGD, NCCTG lung, rhDNase); tasks: clinics / institutions.",
        licence="published study data; R packages MIT / LGPL (see SOURCE.md)",
        citation="Michalowicz BS et al. NEJM 2006; Elmunzer BJ et al. NEJM 2012; Fleming & Harrington (CGD); Loprinzi CL et al. J Clin Oncol 1994; Fuchs HJ et al. NEJM 1994.",
        homepage="https://vincentarelbundock.github.io/Rdatasets/",
        folder="r-multisite-trials",
        files=(
            DataFile(
                "cgd.csv.gz",
                "c796f0b551aa315162f8cd006c9c10caf3a16614265a553c76ff1df5b79f8188",
                3505,
            ),
            DataFile(
                "indo_rct.csv.gz",
                "ecb3cb196d927e71292e4cbaf39d26d354c6f8b244447434fd0258a5ef43bd13",
                8385,
            ),
            DataFile(
                "ncctg_lung.csv.gz",
                "b9150dd79474554eb02717779238ee3d3f8b081ec509fce06988a9eb6f7b4cc3",
                2914,
            ),
            DataFile(
                "opt.csv.gz",
                "c9fe31350c854c4611ba4d29addc6e9e054a6b6d1c76e103ef778480189b4311",
                162415,
            ),
            DataFile(
                "rhDNase.csv.gz",
                "74edb2ab79628ccca5ff62b223ab30803a2f1eabf7b02ca638ab6e21a8528460",
                8617,
            ),
        ),
        n_patients=None,
        n_tasks=None,
    )
)

register_source(
    DatasetSource(
        name="r-pk-dosing",
        title="Pharmacokinetic dosing studies (Phenobarb, Quinidine, Remifentanil, Theoph)",
        description="Per-patient dose histories and drug concentrations; each patient is a task (personalised dosing).",
        licence="published study data; R packages GPL (see SOURCE.md)",
        citation="Grasela & Donn, Dev Pharmacol Ther 1985; Verme et al., Ther Drug Monit 1992; Minto et al., Anesthesiology 1997; Boeckmann, Sheiner & Beal (NONMEM).",
        homepage="https://vincentarelbundock.github.io/Rdatasets/",
        folder="r-pk-dosing",
        files=(
            DataFile(
                "Phenobarb.csv",
                "0a6f40d0c74c06a91e3d6d25a8ea1880478923c22f99c1387b961abb98d7411a",
                20843,
            ),
            DataFile(
                "Quinidine.csv",
                "3cf09dbe67cfc03e84d1fcf6a13eece03947ebdb5f15939e4bac864d0257861a",
                97172,
            ),
            DataFile(
                "Remifentanil.csv",
                "1e62bff588d459b0e1721f20fb4590d5ea8da247a65128bb71f1db9b2fdf296a",
                136988,
            ),
            DataFile(
                "Theoph.csv",
                "4730eea27c1be8354ea3d3d6d8b2e9af0676990acb1a147a79bb24bf37345606",
                3283,
            ),
        ),
        n_patients=272,
        n_tasks=272,
    )
)

register_source(
    DatasetSource(
        name="simglucose-patients",
        title="simglucose virtual type-1-diabetes patients (simulated)",
        description="Parameter sets of 30 in-silico UVA/Padova patients plus insulin-therapy constants; each virtual patient is a task. Simulated, not real patients.",
        licence="MIT (simglucose)",
        citation="Xie J. simglucose v0.2.1 (2018), https://github.com/jxx123/simglucose; Dalla Man C et al. J Diabetes Sci Technol 2014;8:26-34.",
        homepage="https://github.com/jxx123/simglucose",
        folder="simglucose-virtual-patients",
        files=(
            DataFile(
                "Quest.csv",
                "30c73a4a0e406a8d8c08b33cf3e7573b9cee40f1d56b12bbe5c3aab3c73935b5",
                1350,
            ),
            DataFile(
                "vpatient_params.csv",
                "662f3b684d160fdf485edd1d7196dd1cd85c14b53650b030fdb86aaa05bb2e50",
                17782,
            ),
        ),
        n_patients=30,
        n_tasks=30,
    )
)


def dataset_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(DATASETS)


def get_source(name: str) -> DatasetSource:
    """The registered dataset ``name``; an unknown name gets a "did you mean" error."""
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]


def resolve_data_dir(data_dir: str | Path | None = None, name: str = "<name>") -> Path:
    """``data_dir`` if given, else ``$METAMED_DATA_DIR``; error naming both when neither is set."""
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env:
            raise DataNotFoundError(
                f"No data directory: data_dir was not given and {DATA_DIR_ENV} is not set. "
                f"Download the dataset with `{fetch_command(name)}`, then set "
                f"{DATA_DIR_ENV}=DIR (or pass data_dir=DIR / --data-dir DIR)."
            )
        data_dir = env
    return Path(data_dir).expanduser()


def dataset_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """Folder holding dataset ``name``'s files, checked to exist with every file present.

    ``data_dir`` may be the data directory (holding one folder per dataset) or the
    dataset folder itself.
    """
    source = get_source(name)
    root = resolve_data_dir(data_dir, name)
    folder = root / source.folder
    if not folder.is_dir() and root.name == source.folder and root.is_dir():
        folder = root
    hint = (
        f"Download it with `{fetch_command(name)}` and pass that DIR as data_dir "
        f"(or set {DATA_DIR_ENV}=DIR)."
    )
    if not folder.is_dir():
        raise DataNotFoundError(
            f"Dataset '{name}': folder '{source.folder}' not found in {root}. {hint}"
        )
    absent = [f.name for f in source.files if not (folder / f.name).is_file()]
    if absent:
        raise DataNotFoundError(
            f"Dataset '{name}': {len(absent)} of {len(source.files)} file(s) missing in "
            f"{folder}: {', '.join(absent)}. {hint}"
        )
    return folder


def load_dataset(name: str, data_dir: str | Path | None = None) -> Cohort:
    """Load a registered dataset as a :class:`~metamed.data.Cohort`.

    Parameters
    ----------
    name : str
        Registered name, e.g. ``"uci-heart"`` or ``"synthetic"``.
    data_dir : path-like, optional
        Directory holding one folder per dataset; defaults to ``$METAMED_DATA_DIR``.
        Not needed for datasets without files (``synthetic``).

    Raises
    ------
    UnknownNameError
        ``name`` is not registered.
    DataNotFoundError
        The data directory, the dataset folder or one of its files is missing; the
        message names ``metamed data fetch <name> --dest DIR`` and ``METAMED_DATA_DIR``.
    MetamedValueError
        The dataset is listed but metamed has no loader for it yet.
    """
    source = get_source(name)
    if source.loader is None:
        loadable = ", ".join(n for n in dataset_names() if DATASETS[n].loadable)
        raise MetamedValueError(
            f"Dataset '{name}' is listed (files and checksums known) but metamed cannot load "
            f"it yet. Loadable datasets: {loadable}. To use its files now, build a cohort "
            "with metamed.data.cohort_from_table(...) from your own extract."
        )
    if not source.files:
        return source.loader(None)
    return source.loader(dataset_folder(name, data_dir))


def verify(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Check every file of dataset ``name`` against its published sha256.

    Returns
    -------
    dict
        File name -> sha256 (all matching).

    Raises
    ------
    DataNotFoundError
        A file is missing.
    ChecksumError
        A file's sha256 differs from the registry (the message says which and how to fix).
    """
    source = get_source(name)
    if not source.files:
        return {}
    folder = dataset_folder(name, data_dir)
    digests: dict[str, str] = {}
    for item in source.files:
        digest = sha256_file(folder / item.name)
        if digest != item.sha256:
            raise ChecksumError(
                f"Dataset '{name}': file '{item.name}' has sha256 {digest}, expected "
                f"{item.sha256} ({item.size_bytes} bytes published, "
                f"{(folder / item.name).stat().st_size} bytes found). The file is corrupted or "
                f"a different version: delete it and run `{fetch_command(name)}`."
            )
        digests[item.name] = digest
    return digests
