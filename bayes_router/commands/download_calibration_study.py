"""``bayes-router download-calibration-study DEST``: fetch the LLM calibration study's result CSVs."""

from __future__ import annotations

import argparse

HELP = "download the LLM calibration study's MMLU-Pro result CSVs (pinned commit) into a folder"
DESCRIPTION = """Download the 76 mmlu_pro_<MODEL>_eval_all_None.csv files of the LLM calibration study
(github.com/Linwei94/LLM-Calibration-Study, results/, at a pinned commit) into DEST.

Every file must match the size and SHA-256 listed in data/calibration_study_files.csv, else it is
refused. Files already present with the listed SHA-256 are kept; each download goes to a temporary
file renamed when complete, so an interrupted run leaves nothing partial. `make data` runs this
when CALIBRATION_STUDY_RESULTS is not set.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_router.data.download import CALIBRATION_STUDY_BASE_URL

    p.add_argument("dest", metavar="DEST", help="folder to download into (git-ignored, e.g. data/raw/calibration_study)")
    p.add_argument("--base-url", default=CALIBRATION_STUDY_BASE_URL,
                   help="URL of the results folder (default: the public repository at the pinned commit)")
    p.add_argument("--manifest", default=None, metavar="CSV",
                   help="files to fetch (name,bytes,sha256); default data/calibration_study_files.csv")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.download import download_calibration_study

    paths = download_calibration_study(args.dest, base_url=args.base_url, manifest=args.manifest,
                                       progress=not args.no_progress)
    print(f"{len(paths)} files in {args.dest}")
    return 0
