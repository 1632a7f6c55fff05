"""Run folders over http (flows/run_files.py): what `chatsift server` serves beside the UI, read-only and
only under the folders it was given, and the links the flows make to it. The whole server, UI and links
from a real run are in test_serve.py and test_ui_browser.py."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

from flows.execution import plain_execution
from flows.run_files import RUN_FILES_PATH, file_links, run_files_app


@pytest.fixture
def served(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    (runs / "r1" / "contamination").mkdir(parents=True)
    (runs / "r1" / "contamination" / "report.html").write_text("<h1>Contamination report</h1>")
    (runs / "r1" / "shards").mkdir()
    (runs / "r1" / "shards" / "manifest.json").write_text('{"schema_version": 1}')
    (tmp_path / "secret.txt").write_text("not served")
    os.symlink(tmp_path / "secret.txt", runs / "r1" / "escape.txt")
    return runs


def _url(path: Path | str) -> str:
    return f"{RUN_FILES_PATH}{path}"


def test_files_under_a_served_folder_open_with_their_type(served: Path) -> None:
    client = TestClient(run_files_app([served]))
    # mounted at RUN_FILES_PATH on the server; the app itself sees the path below it
    report = client.get(str(served / "r1/contamination/report.html"))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Contamination report" in report.text
    manifest = client.get(str(served / "r1/shards/manifest.json"))
    assert manifest.status_code == 200 and manifest.json() == {"schema_version": 1}
    assert client.head(str(served / "r1/shards/manifest.json")).status_code == 200
    listing = client.get(str(served / "r1"))
    assert listing.status_code == 200
    assert f'href="{_url(served / "r1/contamination")}"' in listing.text and ">shards/<" in listing.text
    assert client.get("/").json() == {"chatsift_served_dirs": [str(served.resolve())]}


def test_nothing_outside_the_served_folders_nor_any_write(served: Path) -> None:
    client = TestClient(run_files_app([served]))
    secret = served.parent / "secret.txt"
    for path in (
        str(secret),  # outside
        f"{served}/../secret.txt",  # climbing out
        f"{served}/%2e%2e/secret.txt",  # climbing out, encoded
        str(served / "r1/escape.txt"),  # a link that points out
        "/etc/passwd",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "not served" not in answer.text and "chatsift server --serve-dir" in answer.text
    assert client.get(str(served / "r1/missing.json")).status_code == 404
    for method in ("post", "put", "delete"):
        assert getattr(client, method)(str(served / "r1/shards/manifest.json")).status_code == 405
    assert (served / "r1/shards/manifest.json").read_text() == '{"schema_version": 1}'


@pytest.fixture
def files_server(served: Path) -> Iterator[str]:
    """The files app alone on a real port, standing in for `chatsift server` (its API is never called)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount(RUN_FILES_PATH, app=run_files_app([served]))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the files server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_links_open_over_http_where_the_server_serves_the_folder(served: Path, files_server: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    report, elsewhere = served / "r1/contamination/report.html", served.parent / "secret.txt"
    with temporary_settings({PREFECT_API_URL: f"{files_server}/api"}):
        links = file_links({"report": report, "elsewhere": elsewhere})
        with plain_execution():  # benchmarks: no server asked
            plain = file_links({"report": report})
    assert links == {"report": files_server + _url(report.resolve()), "elsewhere": elsewhere.resolve().as_uri()}
    assert plain == {"report": report.resolve().as_uri()}
    with urllib.request.urlopen(links["report"], timeout=10) as r:
        assert "Contamination report" in r.read().decode()


def test_links_fall_back_to_file_uris_without_a_chatsift_server(served: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    report = served / "r1/contamination/report.html"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        assert file_links({"report": report}) == {"report": report.resolve().as_uri()}
