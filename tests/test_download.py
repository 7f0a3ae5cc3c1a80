"""The downloader, against a local HTTP file server (never the internet)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import zipfile

import pytest

from bayes_router.cli import main
from bayes_router.data.download import download_eval_results
from bayes_router.errors import InputError


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    (root / "files").mkdir(parents=True)
    for m in ("gemma-7b", "Yi-6B"):
        with zipfile.ZipFile(root / "files" / f"model_outputs_{m}_5shots.zip", "w") as zf:
            zf.writestr("x.json", json.dumps([{"question_id": 1}]))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a, **k: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    listing = [
        {"name": p.name, "download_url": f"{base}/files/{p.name}", "size": p.stat().st_size}
        for p in sorted((root / "files").iterdir())
    ] + [{"name": "README.md", "download_url": f"{base}/README.md", "size": 1}]
    (root / "listing.json").write_text(json.dumps(listing))
    yield base, root
    httpd.shutdown()


def test_download_fetches_every_zip_and_skips_present(server, tmp_path):
    base, root = server
    dest = tmp_path / "dest"
    paths = download_eval_results(dest, listing_url=f"{base}/listing.json", progress=False)
    assert sorted(p.name for p in paths) == ["model_outputs_Yi-6B_5shots.zip", "model_outputs_gemma-7b_5shots.zip"]
    for p in paths:
        assert p.read_bytes() == (root / "files" / p.name).read_bytes()
    assert sorted(x.name for x in dest.iterdir()) == sorted(p.name for p in paths)  # no temporaries
    # a second run keeps what is there (the server copy changed, the local one does not)
    before = paths[0].read_bytes()
    download_eval_results(dest, listing_url=f"{base}/listing.json", progress=False)
    assert paths[0].read_bytes() == before


def test_download_subset_and_errors(server, tmp_path, capsys):
    base, root = server
    got = download_eval_results(tmp_path / "d", listing_url=f"{base}/listing.json", models=["Yi-6B"], progress=False)
    assert [p.name for p in got] == ["model_outputs_Yi-6B_5shots.zip"]
    with pytest.raises(InputError, match="not listed"):
        download_eval_results(tmp_path / "d", listing_url=f"{base}/listing.json", models=["nope"], progress=False)
    # a file that 404s: clear error, nothing partial kept
    listing = json.loads((root / "listing.json").read_text())
    listing[0]["download_url"] = f"{base}/files/missing.zip"
    (root / "listing.json").write_text(json.dumps(listing))
    dest = tmp_path / "d404"
    code = main(["download-mmlu-pro", str(dest), "--listing-url", f"{base}/listing.json", "--no-progress"])
    assert code == 2
    assert "download failed" in capsys.readouterr().err
    assert not any(p.name.endswith(".tmp") or p.name == listing[0]["name"] for p in dest.iterdir())
    with pytest.raises(InputError, match="cannot fetch the file listing"):
        download_eval_results(tmp_path / "x", listing_url=f"{base}/nothing.json", progress=False)
