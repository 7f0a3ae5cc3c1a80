"""Download the public MMLU-Pro evaluation outputs (``make data`` without MMLU_PRO_RESULTS),
and the LLM calibration study's results at a pinned commit (without CALIBRATION_STUDY_RESULTS).

The listing comes from the repository's contents API (a JSON list of entries
with ``name`` and ``download_url``); every ``model_outputs_*.zip`` is fetched
into the destination folder. Each file is downloaded to a temporary name and
renamed when complete, so an interrupted download leaves no partial file and a
second run fetches only what is missing. ``listing_url`` can point anywhere
(the tests serve a listing from a local HTTP server).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from bayes_router.data.io import atomic_path
from bayes_router.errors import InputError

REPOSITORY = "TIGER-AI-Lab/MMLU-Pro"
DEFAULT_LISTING_URL = f"https://api.github.com/repos/{REPOSITORY}/contents/eval_results"
FILE_PREFIX = "model_outputs_"
_CHUNK = 1 << 16


def _get(url: str, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "bayes-router", "Accept": "*/*"})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - URLs are http(s) by construction


def list_remote_files(listing_url: str = DEFAULT_LISTING_URL, timeout: float = 60.0) -> list[dict]:
    """Entries ``{"name", "download_url", "size"}`` of the remote model-output zips."""
    if not listing_url.startswith(("http://", "https://")):
        raise InputError(f"{listing_url}: listing URL must be http(s)")
    try:
        with _get(listing_url, timeout) as resp:
            entries = json.loads(resp.read())
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise InputError(f"{listing_url}: cannot fetch the file listing ({exc})") from None
    except json.JSONDecodeError:
        raise InputError(f"{listing_url}: the listing is not JSON") from None
    if not isinstance(entries, list):
        raise InputError(f"{listing_url}: expected a JSON list of files")
    files = [
        e for e in entries
        if isinstance(e, dict) and str(e.get("name", "")).startswith(FILE_PREFIX)
        and str(e.get("name", "")).endswith(".zip") and e.get("download_url")
    ]
    if not files:
        raise InputError(f"{listing_url}: no {FILE_PREFIX}*.zip files listed")
    return sorted(files, key=lambda e: e["name"])


def download_eval_results(
    dest: str | os.PathLike,
    listing_url: str = DEFAULT_LISTING_URL,
    models: list[str] | None = None,
    progress: bool = True,
    timeout: float = 120.0,
) -> list[Path]:
    """Fetch the model-output zips into ``dest``; files already there (same size) are kept."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    entries = list_remote_files(listing_url, timeout=timeout)
    if models:
        wanted = {f"{FILE_PREFIX}{m}_5shots.zip" for m in models}
        entries = [e for e in entries if e["name"] in wanted]
        missing = wanted - {e["name"] for e in entries}
        if missing:
            raise InputError(f"{listing_url}: not listed: {sorted(missing)}")
    iterator = entries
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(entries, desc="downloading", unit="file")
    written = []
    for entry in iterator:
        target = dest / Path(entry["name"]).name
        size = entry.get("size")
        if target.exists() and (size is None or target.stat().st_size == int(size)):
            written.append(target)
            continue
        url = entry["download_url"]
        if not str(url).startswith(("http://", "https://")):
            raise InputError(f"{url}: download URL must be http(s)")
        try:
            with _get(url, timeout) as resp, atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    while chunk := resp.read(_CHUNK):
                        fh.write(chunk)
                if size is not None and tmp.stat().st_size != int(size):
                    raise InputError(f"{url}: got {tmp.stat().st_size} bytes, listing says {size}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InputError(f"{url}: download failed ({exc}); nothing partial was kept") from None
        written.append(target)
    return written


# ----------------------------------------------------------------------------- the LLM calibration study
#: The study's results at a pinned commit (the one the project's import was checked against);
#: ``data/calibration_study_files.csv`` lists the 76 files taken, with their size and SHA-256.
CALIBRATION_STUDY_REPOSITORY = "Linwei94/LLM-Calibration-Study"
CALIBRATION_STUDY_COMMIT = "ddc349e"
CALIBRATION_STUDY_BASE_URL = (
    f"https://raw.githubusercontent.com/{CALIBRATION_STUDY_REPOSITORY}/{CALIBRATION_STUDY_COMMIT}/results/"
)


def calibration_study_manifest(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows ``{"name", "bytes", "sha256"}`` of the study files to fetch (default: the project's list)."""
    import csv

    path = Path(path) if path is not None else Path(__file__).resolve().parents[2] / "data" / "calibration_study_files.csv"
    if not path.exists():
        raise InputError(f"{path}: the list of calibration-study files is missing")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or any(set(r) != {"name", "bytes", "sha256"} for r in rows):
        raise InputError(f"{path}: expected the columns name,bytes,sha256 and at least one file")
    return [{"name": r["name"], "bytes": int(r["bytes"]), "sha256": r["sha256"].lower()} for r in rows]


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_calibration_study(
    dest: str | os.PathLike,
    base_url: str = CALIBRATION_STUDY_BASE_URL,
    manifest: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = 120.0,
) -> list[Path]:
    """Fetch the study's result CSVs into ``dest``; a file already there with the listed SHA-256 is kept.

    Each file must have the listed size and SHA-256 (the pinned commit's content), else it
    is refused and nothing partial is kept.
    """
    if not base_url.startswith(("http://", "https://")):
        raise InputError(f"{base_url}: base URL must be http(s)")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    entries = calibration_study_manifest(manifest)
    iterator = entries
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(entries, desc="downloading", unit="file")
    written = []
    for entry in iterator:
        target = dest / entry["name"]
        if target.exists() and target.stat().st_size == entry["bytes"] and _sha256(target) == entry["sha256"]:
            written.append(target)
            continue
        url = base_url.rstrip("/") + "/" + entry["name"]
        try:
            with _get(url, timeout) as resp, atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    while chunk := resp.read(_CHUNK):
                        fh.write(chunk)
                if tmp.stat().st_size != entry["bytes"] or _sha256(tmp) != entry["sha256"]:
                    raise InputError(f"{url}: content differs from the pinned file ({tmp.stat().st_size} bytes, "
                                     f"listed {entry['bytes']}; SHA-256 checked); nothing was kept")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InputError(f"{url}: download failed ({exc}); nothing partial was kept") from None
        written.append(target)
    return written
