"""Produce ShareGPT input in the real markup: assistant turns as ChatGPT's DOM, pages as Next.js.

Real ShareGPT HTML is no longer public, so tests, benchmarks and the demo build it from markdown
with this module, following the markup the ShareGPT extension captured (shared/notes/sharegpt.md).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any


def sharegpt_page_html(
    *,
    page_id: str,
    items: Sequence[dict[str, str]],
    title: str = "",
    model: str | None = None,
    views: int = 0,
) -> str:
    """A saved ShareGPT page: Next.js HTML whose __NEXT_DATA__ script holds props.pageProps.

    `items` are {"from": "human"|"gpt", "value": ...}: human values plain text, gpt values HTML.
    """
    content: dict[str, Any] = {"title": title, "avatarUrl": "", "items": list(items)}
    if model is not None:
        content["model"] = model
    next_data = {
        "props": {"pageProps": {"id": page_id, "views": views, "content": content, "comments": []}},
        "page": "/c/[id]",
        "query": {"id": page_id},
        "buildId": "chatsift-fixture",
        "isFallback": False,
        "gssp": True,
        "scriptLoader": [],
    }
    # Next.js escapes "<" in the JSON so that "</script>" inside a message cannot end the script.
    payload = json.dumps(next_data, ensure_ascii=False).replace("<", "\\u003c")
    return (
        "<!DOCTYPE html><html><head><meta charSet=\"utf-8\"/>"
        f"<title>{html.escape(title or 'ShareGPT conversation')}</title></head>"
        "<body><div id=\"__next\"><main>"
        f"<h1>{html.escape(title)}</h1></main></div>"
        f'<script id="__NEXT_DATA__" type="application/json">{payload}</script>'
        "</body></html>"
    )
