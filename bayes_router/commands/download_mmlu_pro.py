"""``bayes-router download-mmlu-pro DEST``: fetch the public model-output zips."""

from __future__ import annotations

import argparse

HELP = "download the public MMLU-Pro model-output zips into a folder"
DESCRIPTION = """Download the public MMLU-Pro evaluation outputs (model_outputs_*.zip) into DEST.

Files already present with the listed size are kept; each download goes to a
temporary file renamed when complete, so an interrupted run leaves nothing partial.
`make data` runs this when MMLU_PRO_RESULTS is not set.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_router.data.download import DEFAULT_LISTING_URL

    p.add_argument("dest", metavar="DEST", help="folder to download into (git-ignored, e.g. data/raw/eval_results)")
    p.add_argument("--listing-url", default=DEFAULT_LISTING_URL, help="JSON listing of the files (default: the public repository)")
    p.add_argument("--models", default=None, help="comma-separated model names to fetch (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.download import download_eval_results

    models = [m for m in args.models.split(",") if m] if args.models else None
    paths = download_eval_results(args.dest, listing_url=args.listing_url, models=models, progress=not args.no_progress)
    print(f"{len(paths)} files in {args.dest}")
    return 0
