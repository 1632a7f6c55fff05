"""Run folders over http: what `chatsift server` serves read-only beside the Prefect UI, and the links to it.

A browser refuses `file://` links from a web page ("Not allowed to load local resource"), so the
artifacts' links to a run's files (the contamination report, the shards manifest) point at the
server that shows them: `chatsift server` mounts `RUN_FILES_PATH` on the Prefect server's own app
(same host and port, so no second address to configure) and answers GET and HEAD for files under
the folders it was told to serve, nothing else. A flow asks that server which folders it serves
and links over http when the file is under one; otherwise it links the `file://` path and logs how
to make it open (docs/defaults.md#prefect).
"""

from __future__ import annotations

import html
import json
import os
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

RUN_FILES_PATH = "/chatsift/files"
# os.pathsep-separated folders `chatsift server` serves; set by flows/cli/server.py for the server process.
SERVED_DIRS_ENV = "CHATSIFT_SERVED_DIRS"
# The probe of a flow's server: a local server answers in milliseconds; a missing one must not stall the run.
_PROBE_SECONDS = 3.0


def served_dirs_from_env() -> list[Path]:
    return [Path(p).resolve() for p in os.environ.get(SERVED_DIRS_ENV, "").split(os.pathsep) if p]


def run_files_app(roots: list[Path]) -> Starlette:
    """GET/HEAD only: `/` lists the served folders (JSON); `/<absolute path>` a file or a folder's listing."""
    # imported here: the CLI imports this module for its constants, and Starlette only the server needs
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.routing import Route

    roots = [r.resolve() for r in roots]

    async def served(request: Request) -> Response:
        if request.path_params["path"] in ("", "/"):
            return JSONResponse({"chatsift_served_dirs": [str(r) for r in roots]})
        target = Path("/" + unquote(request.path_params["path"]).lstrip("/"))
        # resolve() follows links and '..': a path that leaves every served folder is refused, however spelled
        resolved = target.resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            return PlainTextResponse(
                f"{target} is outside the folders this server serves ({', '.join(map(str, roots)) or 'none'}); "
                "start `chatsift server --serve-dir <folder>` with the runs' output folder",
                status_code=404,
            )
        if resolved.is_dir():
            return HTMLResponse(_folder_listing(resolved, at_root=resolved in roots))
        if not resolved.is_file():
            return PlainTextResponse(f"no file {target}", status_code=404)
        return FileResponse(resolved)

    return Starlette(routes=[Route("/{path:path}", served, methods=["GET", "HEAD"])])


def _folder_listing(folder: Path, *, at_root: bool) -> str:
    entries = sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name))
    items = "".join(
        f'<li><a href="{quote(RUN_FILES_PATH + str(p))}">{html.escape(p.name)}{"/" if p.is_dir() else ""}</a></li>'
        for p in entries
    )
    parent = "" if at_root else f'<p><a href="{quote(RUN_FILES_PATH + str(folder.parent))}">..</a></p>'
    title = html.escape(str(folder))
    return f"<!doctype html><title>{title}</title><h1>{title}</h1>{parent}<ul>{items}</ul>"


def chatsift_server_app() -> Any:
    """uvicorn's factory for `chatsift server`: Prefect's API and UI with the run folders mounted beside them."""
    from prefect.server.api.server import create_app
    from starlette.routing import Mount

    app = create_app(final=True)
    # Before the UI's catch-all mount at "/", which would otherwise answer every path with the UI.
    app.router.routes.insert(0, Mount(RUN_FILES_PATH, app=run_files_app(served_dirs_from_env())))
    return app


def _server_base_url() -> str | None:
    """The http address of the Prefect server this process talks to; None for an ephemeral or no server."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    return api_url.rstrip("/").removesuffix("/api") if api_url else None


def _served_dirs(base: str) -> list[Path]:
    """The folders the server at `base` serves; none for a plain `prefect server start` or no answer."""
    try:
        with urllib.request.urlopen(base + RUN_FILES_PATH + "/", timeout=_PROBE_SECONDS) as r:
            return [Path(p) for p in json.loads(r.read())["chatsift_served_dirs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def file_links(paths: Mapping[str, str | Path]) -> dict[str, str]:
    """For each named path, an http link on this run's `chatsift server` when it serves the path's folder,
    else its file:// URI (which opens from a terminal or a file manager, not from the UI)."""
    from flows.execution import publishing, run_logger

    resolved = {name: Path(p).resolve() for name, p in paths.items()}
    base = _server_base_url() if publishing() else None
    roots = _served_dirs(base) if base is not None else []
    links: dict[str, str] = {}
    for name, path in resolved.items():
        if base is not None and any(path.is_relative_to(root) for root in roots):
            links[name] = base + RUN_FILES_PATH + quote(str(path))
        else:
            links[name] = path.as_uri()
    unserved = sorted(p.name for n, p in resolved.items() if not links[n].startswith("http"))
    if unserved and publishing():
        run_logger().info(
            "%s linked as file://, which a browser will not open from the UI: start the server with "
            "`chatsift server --serve-dir <the runs' output folder>` (docs/defaults.md#prefect)",
            ", ".join(unserved),
        )
    return links


def publish_file_link(*, key: str, path: str | Path, link_text: str, description: str) -> None:
    """A link artifact to a run's file that opens from the UI when `chatsift server` serves its folder."""
    from flows.execution import publish_link, publishing

    if publishing():
        publish_link(key=key, link=file_links({"file": path})["file"], link_text=link_text, description=description)
