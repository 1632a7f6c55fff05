"""The `finetune` flow: fine-tune a causal LM on a run's packed shards (train/), with progress and the loss curve.

The flow checks its inputs first (manifest, layout, device, precision, model source, vocabulary)
and fails before any work with the fix in its message. Training is one task: it runs on the GPU
worker (work pool chatsift-gpu in docker/compose.yaml's gpu profile) or wherever the flow runs.
Progress is a Prefect progress artifact and a log line per step (loss, learning rate, tokens/s,
memory); the loss curve comes back as a table artifact, a markdown summary with a text chart, and
a link to loss_curve.svg.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.execution import publish_failure, publish_markdown, publish_table, run_logger, run_step
from flows.progress import RunProgress
from flows.run_files import publish_file_link
from schemas.config import FinetuneConfig
from schemas.finetune import FinetuneSummary, StepMetrics
from schemas.run_layout import new_run_id
from train.loop import METRICS_NAME
from train.loss_curve import loss_curve_text
from train.run import check_finetune_inputs, check_run_folder, run_finetune

# Table artifacts are stored as JSON rows on the server: a few hundred points draw the curve.
MAX_CURVE_POINTS = 500
_GIB = 1024**3


def _curve_points(history: list[StepMetrics]) -> list[StepMetrics]:
    if len(history) <= MAX_CURVE_POINTS:
        return history
    stride = len(history) / MAX_CURVE_POINTS
    picked = [history[int(i * stride)] for i in range(MAX_CURVE_POINTS)]
    return picked if picked[-1] is history[-1] else [*picked[:-1], history[-1]]


@task(name="finetune-train")
def train_task(shards_dir: str, model: str, run_dir: str, config: FinetuneConfig, resume: bool) -> dict:
    logger = run_logger()
    progress: RunProgress | None = None

    def on_step(m: StepMetrics, total_steps: int) -> None:
        logger.info(
            "step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  %d tokens  %.0f tokens/s  peak memory %.2f GiB",
            m.step,
            total_steps,
            m.loss,
            m.learning_rate,
            m.grad_norm,
            m.tokens,
            m.tokens_per_second,
            m.peak_memory_bytes / _GIB,
        )
        nonlocal progress
        if progress is None:  # the total is known once training has started
            progress = RunProgress(key="finetune-progress", title="finetune", total=total_steps, unit="steps")
        progress.update(m.step, f"loss {m.loss:.4f}, {m.tokens_per_second:,.0f} tokens/s")

    summary = run_finetune(shards_dir, model, config=config, run_dir=run_dir, resume=resume, on_step=on_step)
    return summary.model_dump(mode="json")


def _artifacts(summary: FinetuneSummary, history: list[StepMetrics]) -> None:
    publish_table(
        key="finetune-loss-curve",
        table=[
            {
                "step": m.step,
                "loss": round(m.loss, 5),
                "learning_rate": m.learning_rate,
                "tokens_per_second": round(m.tokens_per_second, 1),
            }
            for m in _curve_points(history)
        ],
        description=f"loss per optimizer step, run {summary.run_id}",
    )
    resumed = f"; resumed after step {summary.resumed_from_step}" if summary.resumed_from_step else ""
    lines = [
        f"# Fine-tuning run {summary.run_id}",
        "",
        f"{summary.method} on {summary.device} ({summary.precision}, {summary.attention}), "
        f"{summary.steps} steps, {summary.tokens:,} tokens ({summary.loss_tokens:,} supervised), "
        f"{summary.mean_tokens_per_second:,.0f} tokens/s, peak memory {summary.peak_memory_bytes / _GIB:.2f} GiB, "
        f"{summary.seconds:.1f} s{resumed}",
        "",
        "```",
        loss_curve_text(history),
        "```",
        "",
        f"Final weights and their lineage: `{summary.final_dir}`",
    ]
    publish_markdown(markdown="\n".join(lines), key="finetune-summary", description="fine-tuning summary")
    publish_file_link(
        key="finetune-loss-curve-svg",
        path=Path(summary.run_dir) / "loss_curve.svg",
        link_text="loss_curve.svg",
        description="the loss curve as an SVG file",
    )


@flow(name="finetune", log_prints=True, on_failure=[publish_failure])
def finetune_flow(
    shards_dir: str,
    model: str,
    out_dir: str = "runs/finetune",
    config: FinetuneConfig = FinetuneConfig(),
    run_id: str | None = None,
    resume: bool = False,
) -> dict:
    """Fine-tune `model` (a local folder, or a hub name when online) on the packed shards in `shards_dir`.

    The run goes to out_dir/<run_id>; with `resume`, an existing run continues after its newest checkpoint.
    """
    inputs = check_finetune_inputs(shards_dir, model, config=config)
    run_dir = Path(out_dir) / (run_id or new_run_id())
    check_run_folder(run_dir, resume=resume)
    print(
        f"fine-tuning {model} ({config.method}) on {inputs.manifest.total_rows} packed rows, "
        f"{inputs.manifest.total_tokens:,} tokens, on {inputs.setup.device} ({inputs.setup.precision}); "
        f"run folder {run_dir}"
    )
    result = run_step(train_task, str(shards_dir), model, str(run_dir), config, resume)
    summary = FinetuneSummary.model_validate(result)
    metrics = Path(summary.run_dir) / METRICS_NAME
    history = [StepMetrics.model_validate_json(line) for line in metrics.read_text("utf-8").splitlines() if line]
    _artifacts(summary, history)
    return result
