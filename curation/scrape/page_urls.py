"""Page URLs of the url_template's shape: the id a listed URL names, read the way a server would read it.

A listed URL is never requested as written: its path is percent-decoded and its "." and ".." segments
resolved first (so "/c/%2e%2e/etc" is "/etc", off the shape), the text in {id}'s place is taken out, and
the URL requested is rebuilt from the origin and the template with that id once it is validated.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def resolved_path(path: str) -> str:
    """`path` with %-escapes decoded, then dot segments removed (RFC 3986 section 5.2.4)."""
    segments = unquote(path).split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(kept) > 1:  # kept[0] is the "" before the leading "/": ".." never climbs above the root
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")  # "/c/." is the folder "/c/"
    return "/".join(kept)


def template_path(url_template: str) -> tuple[str, str]:
    """The path before and after "{id}" in a url_template ("/c/", "" for https://sharegpt.com/c/{id})."""
    before, after = urlsplit(url_template).path.split("{id}")  # one {id}, in the path: ScrapeConfig checks it
    return before, after


def id_in_path(path: str, *, url_template: str) -> str | None:
    """The text in {id}'s place when `path`, resolved, has the template's shape; None when it does not.

    One trailing "/" is allowed ("/c/QWJhYvA/"); the text is not validated as an id here.
    """
    prefix, suffix = template_path(url_template)
    resolved = resolved_path(path)
    if not suffix and resolved.endswith("/") and len(resolved) > len(prefix):
        resolved = resolved[:-1]
    if len(resolved) <= len(prefix) + len(suffix) or not resolved.startswith(prefix) or not resolved.endswith(suffix):
        return None
    text = resolved[len(prefix) : len(resolved) - len(suffix)]
    return text if "/" not in text else None
