"""chatsift's deployments, served from one process: `chatsift serve` (flows/cli/serve.py).

The served process registers the deployments with the Prefect server named by PREFECT_API_URL
and runs their flow runs itself: no work pool is needed for a single machine. Parameters are
typed (the curate and contamination flows take a CurationConfig), so the UI shows a form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.contamination import contamination_flow
from flows.curate import curate_flow
from flows.finetune import finetune_flow
from flows.scrape import scrape_flow
from flows.shards import build_shards_flow
from schemas.config import CurationConfig

# The folder holding flows/ (this checkout, or /app in the images): where a work pool's worker runs from.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
# Nightly at 03:00 UTC (Prefect's cron is UTC unless a timezone is given; docs/defaults.md#prefect).
NIGHTLY = "0 3 * * *"


# The config sections each flow taking a CurationConfig never reads: left out of its deployment's form
# and default parameters (curate's form carried all of [finetune], ~15,000 px of it). A run started
# from the form gets their defaults, which the flow does not look at.
UNREAD_SECTIONS = {
    "curate": ("scrape", "finetune"),
    "contamination": ("scrape", "finetune"),
    "build-shards": ("scrape", "finetune"),
    "scrape": ("finetune",),
}


def _built(deployment: object) -> RunnerDeployment:
    # to_deployment is sync-compatible: called outside an event loop it returns the deployment.
    if not isinstance(deployment, RunnerDeployment):
        raise TypeError(f"expected a RunnerDeployment, got {type(deployment).__name__}")
    unread = UNREAD_SECTIONS.get(deployment.flow_name or "", ())
    if unread:
        # New dicts, never pops: the deployments share their default parameters.
        schema = deployment._parameter_openapi_schema
        definition = schema.definitions["CurationConfig"]
        definition["properties"] = _without(definition["properties"], unread)
        schema.properties["config"] = _without(schema.properties["config"], ("default",)) | {
            "default": _without(schema.properties["config"].get("default") or {}, unread)
        }
        parameters = deployment.parameters
        if "config" in parameters:
            deployment.parameters = parameters | {"config": _without(parameters["config"], unread)}
    return deployment


def _without(mapping: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def chatsift_deployments(
    *, inputs: list[str], out_dir: str, config: CurationConfig, cron: str = NIGHTLY, schedule_active: bool = True
) -> list[RunnerDeployment]:
    """The deployments: a scheduled re-curation of `inputs`, on-demand curate, contamination, shards, scrape,
    finetune."""
    config_json = config.model_dump(mode="json")
    return [
        _built(
            curate_flow.to_deployment(
                name="recurate-nightly",
                description="Re-curate the configured inputs on a schedule (switch it on or off in the UI).",
                tags=["chatsift", "curation", "scheduled"],
                parameters={"inputs": inputs, "out_dir": out_dir, "config": config_json},
                cron=cron,
                paused=not schedule_active,
            )
        ),
        _built(
            curate_flow.to_deployment(
                name="curate",
                description="Curate ShareGPT pages, dumps or JSONL into clean Parquet, a drop ledger and shards.",
                tags=["chatsift", "curation"],
                parameters={"out_dir": out_dir, "config": config_json},
            )
        ),
        _built(
            contamination_flow.to_deployment(
                name="contamination",
                description="Check a folder of curated conversation parts against benchmark questions.",
                tags=["chatsift", "contamination"],
                parameters={"out_dir": out_dir, "config": config_json},
            )
        ),
        _built(
            build_shards_flow.to_deployment(
                name="shards",
                description="Tokenize and pack a curated run's conversations into training shards again "
                "(another tokenizer, template or sequence length) without curating again.",
                tags=["chatsift", "shards"],
                parameters={"out_dir": out_dir, "config": config_json},
            )
        ),
        _built(
            scrape_flow.to_deployment(
                name="scrape",
                description="Fetch ShareGPT pages by id or URL (allow-listed hosts, rate-limited, resumable) "
                "into saved pages that curate reads, with every id that was not fetched in the ledger.",
                tags=["chatsift", "scrape"],
                parameters={"out_dir": out_dir, "config": config_json},
            )
        ),
        _built(finetune_flow.to_deployment(**finetune_deployment_options(out_dir=out_dir, config=config))),
    ]


def finetune_deployment_options(*, out_dir: str, config: CurationConfig) -> dict[str, Any]:
    """The finetune deployment's name, description, tags and default parameters, served or in a work pool."""
    return {
        "name": "finetune",
        "description": "Fine-tune a causal LM (LoRA or full) on a run's packed shards; progress, tokens/s and "
        "the loss curve come back as artifacts, the adapter or model with the shards' lineage.",
        "tags": ["chatsift", "finetune", "gpu"],
        "parameters": {"out_dir": str(Path(out_dir) / "finetune"), "config": config.finetune.model_dump(mode="json")},
    }


def deploy_finetune_to_pool(*, pool: str, source: Path, out_dir: str, config: CurationConfig) -> str:
    """Register the finetune deployment on a process work pool (created if missing), running from `source`.

    The GPU worker of docker/compose.yaml's gpu profile polls pool chatsift-gpu and runs the flow
    from its image's /app. Returns the deployment id.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    remote = finetune_flow.from_source(source=str(source), entrypoint="flows/finetune.py:finetune_flow")
    deployment_id = remote.deploy(  # type: ignore[union-attr]
        work_pool_name=pool,
        build=False,
        push=False,
        print_next_steps=False,
        **finetune_deployment_options(out_dir=out_dir, config=config),
    )
    return str(deployment_id)


def serve_deployments(
    *,
    inputs: list[str],
    out_dir: str,
    config: CurationConfig,
    cron: str | None = None,
    schedule_active: bool = True,
    gpu_pool: str | None = None,
    gpu_pool_source: Path | None = None,
) -> None:
    """Register every deployment and serve their flow runs from this process until it stops.

    With `gpu_pool`, finetune is registered on that process work pool (running from `gpu_pool_source`)
    instead of being served here.
    """
    deployments = chatsift_deployments(
        inputs=inputs, out_dir=out_dir, config=config, cron=cron or NIGHTLY, schedule_active=schedule_active
    )
    if gpu_pool:
        deployment_id = deploy_finetune_to_pool(
            pool=gpu_pool, source=gpu_pool_source or SOURCE_ROOT, out_dir=out_dir, config=config
        )
        print(f"finetune/finetune registered on work pool {gpu_pool!r} ({deployment_id})", flush=True)
        deployments = [d for d in deployments if d.name != "finetune"]
    # Schedules stay as they are when this process stops (serve pauses them by default).
    serve(*deployments, pause_on_shutdown=False)
