"""The loss curve of a run, as a standalone SVG file and as a text chart for markdown artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from schemas.finetune import StepMetrics

__all__ = ["loss_curve_svg", "loss_curve_text"]

_BLOCKS = " ▁▂▃▄▅▆▇█"


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def loss_curve_svg(history: Sequence[StepMetrics], *, title: str = "training loss") -> str:
    """An SVG line chart of loss against step, with the axes' end values written on them."""
    width, height, left, right, top, bottom = 640, 320, 64, 16, 32, 40
    if not history:
        empty = '<text x="8" y="40">no steps</text>'
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="80">{empty}</svg>'
    steps = [m.step for m in history]
    losses = [m.loss for m in history]
    lo, hi = _bounds(losses)
    first, last = steps[0], steps[-1]
    span = max(last - first, 1)

    def x(step: int) -> float:
        return left + (step - first) / span * (width - left - right)

    def y(loss: float) -> float:
        return top + (hi - loss) / (hi - lo) * (height - top - bottom)

    points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, losses, strict=True))
    axis = f"M{left},{top} V{height - bottom} H{width - right}"
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            'font-size="12">',
            f'<text x="{left}" y="18" font-size="14">{escape(title)}</text>',
            f'<path d="{axis}" fill="none" stroke="#444"/>',
            f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{hi:.3f}</text>',
            f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">{lo:.3f}</text>',
            f'<text x="{left}" y="{height - bottom + 16}">step {first}</text>',
            f'<text x="{width - right}" y="{height - bottom + 16}" text-anchor="end">step {last}</text>',
            f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>',
            "</svg>",
        ]
    )


def loss_curve_text(history: Sequence[StepMetrics], *, columns: int = 60) -> str:
    """One line of block characters, one column per step bucket (mean loss), lowest to highest."""
    if not history:
        return "(no steps)"
    buckets: list[list[float]] = [[] for _ in range(min(columns, len(history)))]
    for i, m in enumerate(history):
        buckets[i * len(buckets) // len(history)].append(m.loss)
    means = [sum(b) / len(b) for b in buckets]
    lo, hi = _bounds(means)
    chars = "".join(_BLOCKS[1 + round((v - lo) / (hi - lo) * (len(_BLOCKS) - 2))] for v in means)
    first, last = history[0], history[-1]
    return f"{chars}\nloss {first.loss:.4f} at step {first.step} -> {last.loss:.4f} at step {last.step}"
