"""explore.html's embedding map: the run's conversations as points, placed by UMAP over MiniLM vectors of their
first user turn, coloured by source, model or a k-means cluster, with the contaminated and the dropped ones as layers
of their own.

- Vectors come from the caller's `embed` (flows/resources.py): the contamination model behind its on-disk cache, keyed
  by the text, so a run whose contamination check embedded its user turns is mapped without embedding again; a run
  without the check embeds them once, and the next page reads them from the cache.
- Each layer holds up to `limit` conversations, drawn by a hash of the id; the page says when it drew a sample.
- The map is inline SVG and plain CSS: radio buttons pick the colouring, check boxes show or hide a layer, and a
  point's <title> (shown on hover) holds its id and the start of its first user turn. The page stays script-free.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import polars as pl

from schemas.run_layout import CONVERSATIONS_DIR, LEDGER_DIR

# Layers, drawn in this order (the last on top), with the CSS class of their points.
LAYERS = (("kept", "k"), ("dropped", "d"), ("contaminated", "x"))
# Characters of the first user turn a point's hover text shows.
HOVER_CHARS = 160
# Categories coloured per scheme; the rarer ones share "other".
PALETTE = ("#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c2255c", "#5c940d", "#7048e8")
OTHER_COLOUR = "#adb5bd"
MAX_CLUSTERS = len(PALETTE)


@dataclass(frozen=True)
class MapLayer:
    """One layer's points: ids, sources, models, first user turns, and how many the run had."""

    name: str
    frame: pl.DataFrame  # id, source, model, text; one row per drawn conversation
    total: int  # conversations of this layer in the run


_FIRST_USER = (
    pl.col("turns")
    .list.eval(pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content"))
    .list.first()
)


def _first_user_turns(parts: Sequence[Path], ids: pl.Series | None = None) -> pl.DataFrame:
    """id, source, model, text (the first user turn), for the conversations of `parts` (those in `ids` only)."""
    if not parts:
        return pl.DataFrame(schema={"id": pl.String, "source": pl.String, "model": pl.String, "text": pl.String})
    scan = pl.scan_parquet(list(parts))
    if ids is not None:
        scan = scan.filter(pl.col("id").is_in(ids.implode()))
    return scan.select("id", "source", "model", text=_FIRST_USER).collect()


def _sampled(frame: pl.LazyFrame, limit: int) -> pl.LazyFrame:
    return frame.with_columns(order=pl.col("id").hash(seed=7)).sort("order", "id").head(limit).drop("order")


def kept_layer(run_dir: Path, limit: int) -> MapLayer:
    """The kept conversations (conversations/), up to `limit`."""
    parts = sorted((run_dir / CONVERSATIONS_DIR).glob("*.parquet"))
    if not parts:
        return MapLayer("kept", _first_user_turns([]), 0)
    total = pl.scan_parquet(parts).select(pl.len()).collect().item()
    ids = _sampled(pl.scan_parquet(parts).select("id"), limit).collect()["id"]
    frame = _first_user_turns(parts, ids if total > limit else None)
    return MapLayer("kept", frame.filter(pl.col("text").is_not_null()), total)


def ledger_layers(run_dir: Path, stage_outputs: Sequence[Path], limit: int) -> tuple[MapLayer, MapLayer]:
    """(dropped, contaminated): the conversations the ledger drops, those of the contamination stage apart (with the
    ones whose later turns it cut), each up to `limit`, with their text from the stage outputs that still hold them
    (the last one that does: a conversation is there as the stage that dropped it saw it)."""
    ledger_files = sorted((run_dir / LEDGER_DIR).glob("*.parquet"))
    empty = _first_user_turns([])
    if not ledger_files:
        return MapLayer("dropped", empty, 0), MapLayer("contaminated", empty, 0)
    ledger = pl.scan_parquet(ledger_files)
    ids = {
        "dropped": ledger.filter((pl.col("scope") == "conversation") & (pl.col("stage") != "contamination")),
        "contaminated": ledger.filter(pl.col("stage") == "contamination"),
    }
    ids = {name: rows.select(id="conversation_id").unique() for name, rows in ids.items()}
    chosen = {name: _sampled(frame, limit).collect()["id"] for name, frame in ids.items()}
    # one pass over the stage outputs for both layers; the last output holding a conversation saw it last
    wanted = pl.concat(list(chosen.values())).unique()
    found = pl.concat([empty, *(_first_user_turns([p], wanted) for p in stage_outputs)])
    found = found.unique("id", keep="last", maintain_order=True).filter(pl.col("text").is_not_null())
    dropped, contaminated = (
        MapLayer(
            name, found.filter(pl.col("id").is_in(chosen[name].implode())), frame.select(pl.len()).collect().item()
        )
        for name, frame in ids.items()
    )
    return dropped, contaminated


def project(vectors: np.ndarray) -> np.ndarray:
    """2-D coordinates by UMAP (cosine, seeded, so a page is the same each time it is made); a run too small for
    UMAP's neighbour graph gets its two principal components.

    The neighbours are FAISS's exact inner-product search handed to UMAP as precomputed_knn: UMAP's own search
    (pynndescent, above 4,096 points) costs ~50 s of numba compiling in every new process, against ~0.2 s here for
    5,000 points (measured on the real sample's run, 2 cores)."""
    n = len(vectors)
    if n < 8:
        centred = vectors - vectors.mean(axis=0) if n else vectors
        _, _, axes = np.linalg.svd(centred, full_matrices=False) if n > 1 else (None, None, np.eye(2, vectors.shape[1]))
        coords = centred @ axes[:2].T
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    import faiss
    import umap  # ~2 s to import (numba), so only when a map is drawn

    neighbours = min(15, n - 1)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    similarity, rows = index.search(data, neighbours)
    distance = np.clip(1.0 - similarity, 0.0, None).astype(np.float32)  # the cosine distance of unit vectors
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=neighbours,
        metric="cosine",
        n_epochs=200,
        random_state=0,
        precomputed_knn=(rows, distance, None),
    )
    with warnings.catch_warnings():
        # both say what is meant here: one thread for a seeded layout, and no .transform() of new points later
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def clusters(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label per vector, index of the vector nearest each centroid) by FAISS k-means, k ~ sqrt(n / 2), at most
    MAX_CLUSTERS, seeded."""
    import faiss

    n = len(vectors)
    k = max(1, min(MAX_CLUSTERS, round(math.sqrt(n / 2)), n))
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    # Twenty starts, the best kept: on 5 clear topics (60 points), one start merged two of them at 22 seeds of 30,
    # five starts at 5, twenty at none. Any number of points per centroid, without FAISS's warning below 39.
    kmeans = faiss.Kmeans(
        data.shape[1], k, niter=25, nredo=20, seed=1234, spherical=True, verbose=False, min_points_per_centroid=1
    )
    kmeans.train(data)
    _, labels = kmeans.index.search(data, 1)
    centroid_index = faiss.IndexFlatIP(data.shape[1])
    centroid_index.add(data)
    _, nearest = centroid_index.search(np.ascontiguousarray(kmeans.centroids, dtype=np.float32), 1)
    return labels[:, 0].astype(np.int64), nearest[:, 0].astype(np.int64)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= HOVER_CHARS else text[:HOVER_CHARS] + "…"


def map_html(
    layers: Sequence[MapLayer],
    embed: Callable[[list[str]], np.ndarray],
    limit: int,
    width: int = 960,
    height: int = 640,
) -> str:
    """The map's section: controls, legends, the SVG with one <circle> per drawn conversation, and what was drawn."""
    by_name = {layer.name: layer for layer in layers}
    drawn = [layer for layer in layers if layer.frame.height]
    if not drawn:
        return '<p class="muted">No conversation with a user turn to map.</p>'
    frame = pl.concat([layer.frame.with_columns(layer=pl.lit(layer.name)) for layer in drawn])
    vectors = np.asarray(embed(frame["text"].to_list()), dtype=np.float32)
    low, high = (coords := project(vectors)).min(axis=0), coords.max(axis=0)
    margin = 12
    xy = margin + (coords - low) / np.where(high > low, high - low, 1.0) * [width - 2 * margin, height - 2 * margin]
    ids, texts, layer_of = frame["id"].to_list(), frame["text"].to_list(), frame["layer"].to_list()
    sources = frame["source"].fill_null("unknown").to_list()
    models = frame["model"].fill_null("no model banner").to_list()
    kept_rows = [i for i, layer in enumerate(layer_of) if layer == "kept"]
    # the colour schemes, over the kept points: (name, class prefix, legend labels, category of each kept point)
    schemes: list[tuple[str, str, list[str], dict[int, int]]] = []
    for name, prefix, values in (("source", "s", sources), ("model", "m", models)):
        top = [v for v, _ in Counter(values[i] for i in kept_rows).most_common(len(PALETTE))]
        index = {v: k for k, v in enumerate(top)}
        schemes.append((name, prefix, [*top, "other"], {i: index.get(values[i], len(top)) for i in kept_rows}))
    if kept_rows:
        labels, nearest = clusters(vectors[kept_rows])
        # each cluster named by its most central first user turn
        names = [f"{k}: “{_cut(texts[kept_rows[int(row)]])[:60]}”" for k, row in enumerate(nearest)]
        schemes.append(("cluster", "c", names, dict(zip(kept_rows, labels.tolist(), strict=True))))
    circles: dict[str, list[str]] = {name: [] for name, _ in LAYERS}
    layer_class = dict(LAYERS)
    for i, layer in enumerate(layer_of):
        classes = " ".join([layer_class[layer], *(f"{prefix}{cat[i]}" for _, prefix, _, cat in schemes if i in cat)])
        hover = f"{ids[i]} · {layer} · {sources[i]} · {models[i]}\n{_cut(texts[i])}"
        circles[layer].append(
            f'<circle class="{classes}" cx="{xy[i, 0]:.1f}" cy="{xy[i, 1]:.1f}"><title>{escape(hover)}</title></circle>'
        )
    css, legends, controls = [], [], []
    for k, (name, prefix, legend, cat) in enumerate(schemes):
        counts = Counter(cat.values())
        colours = [*PALETTE, OTHER_COLOUR]
        css += [f"#by-{name}:checked~svg .{prefix}{j}{{fill:{colours[j]}}}" for j in range(len(legend))]
        css.append(f"#by-{name}:checked~.legend-{name}{{display:flex}}")
        entries = "".join(
            f'<span><b style="color:{colours[j]}">●</b> {escape(label)} ({counts[j]})</span>'
            for j, label in enumerate(legend)
            if counts[j]
        )
        legends.append(f'<div class="legend legend-{name}">{entries}</div>')
        checked = " checked" if k == 0 else ""
        controls.append(
            f'<input type="radio" name="colour" id="by-{name}"{checked}><label for="by-{name}">{name}</label>'
        )
    css += [f"#show-{name}:not(:checked)~svg .{cls}{{display:none}}" for name, cls in LAYERS]
    # points as large as the map leaves room for: a few stand out, thousands do not hide each other
    radius = 4.5 if frame.height <= 500 else 3 if frame.height <= 5000 else 2
    css.append(f"svg.map circle.k{{r:{radius}px}}svg.map circle.d{{r:{radius * 0.8:g}px}}")
    css.append("svg.map circle:hover{r:7px;stroke:#000}")
    toggles = "".join(
        f'<input type="checkbox" id="show-{name}" checked><label for="show-{name}" class="layer-{cls}">{name} '
        f"({len(circles[name])})</label>"
        for name, cls in LAYERS
        if name in by_name
    )
    svg = (
        f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="embedding map">{"".join("".join(circles[name]) for name, _ in LAYERS)}</svg>'
    )
    notes = "".join(f"<li>{escape(_layer_note(by_name[name], limit))}</li>" for name, _ in LAYERS if name in by_name)
    return (
        f"<style>{''.join(css)}</style>"
        f'<div class="map-box"><span class="muted">colour by</span> {"".join(controls)} '
        f'<span class="muted">· show</span> {toggles}{"".join(legends)}{svg}</div><ul class="muted">{notes}</ul>'
    )


def _layer_note(layer: MapLayer, limit: int) -> str:
    """How many of the layer's conversations the map draws, and why any are missing."""
    if layer.total == 0:
        return f"{layer.name}: none in this run."
    chosen = min(limit, layer.total)
    text = (
        f"{layer.name}: all {layer.total} conversations"
        if layer.total <= limit
        else f"{layer.name}: a sample of {chosen} of {layer.total} conversations, drawn by a hash of the id "
        f"([run] explore_map_points = {limit})"
    )
    if layer.frame.height < chosen:
        text += f"; {chosen - layer.frame.height} of them not placed: the run kept no user turn of them"
    return f"{text}; {layer.frame.height} points."
