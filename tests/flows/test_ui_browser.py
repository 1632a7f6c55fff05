"""The Prefect UI as a user meets it, in headless Chromium: `chatsift server --port <free port>`, the
deployments `chatsift serve` registers, the curate form (descriptions shown, no finetune fields), a run
started from that form, its artifacts, and the link to the contamination report followed over http.
Screenshots of each page are kept in test-artifacts/ui/ (tests.helpers.browser.kept_artifacts_dir)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from schemas.config import CurationConfig, FinetuneConfig, RunConfig
from tests.conftest import REPO_ROOT
from tests.helpers.browser import Browser, kept_artifacts_dir
from tests.helpers.processes import stop, wait_until

# The form's property whose label is `name` (the Prefect UI's schema form).
_PROPERTY = (
    "[...document.querySelectorAll('.schema-form-property')]"
    ".find(p => p.querySelector('.schema-form-property__label')?.innerText.trim() === {name})"
)


def _property(name: str) -> str:
    return _PROPERTY.format(name=json.dumps(name))


def _title(field: str) -> str:
    """The label the form gives a config field (pydantic's default title)."""
    return field.replace("_", " ").title()


def _artifact_page(b: Browser, key: str) -> str:
    """The href of the artifact card with this key on the run's Artifacts tab."""
    href = b.evaluate(
        "(() => { const a = [...document.querySelectorAll('a[href*=\"/artifacts/artifact/\"]')]"
        f".find(a => a.innerText.split('\\n').map(s => s.trim()).includes({json.dumps(key)})); "
        "return a ? a.getAttribute('href') : null; })()"
    )
    assert href, f"no artifact {key} on the run's page:\n{b.text()[:3000]}"
    return str(href)


def _overflow(b: Browser) -> float:
    """How far the widest table reaches past the box it sits in (a box that scrolls hides the rest)."""
    return float(
        b.evaluate(
            "Math.max(...[...document.querySelectorAll('table')].map(t => t.scrollWidth - t.parentElement.clientWidth))"
        )
    )


def _submit_with_input(b: Browser, inputs_property: str, value: str) -> None:
    """Add one item to the list field `inputs_property`, type `value` in it and submit the form.

    On a busy machine (CI) the UI once drew the form again after the deployment's parameters were in it and
    the item was typed: the item was gone, and the submit was refused for the missing required field, as a
    user whose item vanished would see. (Here an item typed in stayed for 40 s, so the redraw comes early.)
    The item is then typed again, at most three times; a submit that leaves the item in place and the page
    on the form fails when the wait runs out."""
    add_item = f"[...{inputs_property}.querySelectorAll('button')].find(x => x.innerText.trim() === 'Add item')"
    textarea = f"{inputs_property}.querySelector('textarea')"
    for _ in range(3):
        b.evaluate(f"{add_item}.click()")
        b.wait_for(f"!!{textarea}", "the new inputs item")
        b.fill(textarea, value)
        b.click_text("button", "Submit")
        outcome = b.wait_for(
            f"!location.pathname.endsWith('/run') ? 'sent' : (!{textarea} ? 'wiped' : '')",
            "the form to be sent or reset",
        )
        if outcome == "sent":
            return
    raise AssertionError(f"the form was reset three times before it was sent; the page shows:\n{b.text()[:3000]}")


def test_a_user_runs_curate_from_the_ui_and_opens_the_contamination_report(
    tmp_path: Path, server: dict[str, str]
) -> None:
    shots = kept_artifacts_dir("ui")
    base = server["PREFECT_API_URL"].removesuffix("/api")
    inputs = write_demo_inputs(tmp_path / "in")
    config = tmp_path / "config.json"
    config.write_text(DEMO_CONFIG.model_dump_json())
    serve_log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    served = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", *map(str, inputs), "--out", str(tmp_path / "runs")]
        + ["--config", str(config)],
        env=server,
        cwd=REPO_ROOT,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}),
            get_client(sync_client=True) as client,
            Browser(tmp_path / "chromium") as b,
        ):
            wait_until("chatsift serve", lambda: len(client.read_deployments()) >= 6, served, timeout=120)

            # The deployments page lists all six.
            b.goto(base + "/deployments")
            b.wait_for_text("recurate-nightly")
            b.wait_until_settled()
            for name in ("curate", "recurate-nightly", "contamination", "shards", "scrape", "finetune"):
                assert name in b.text().split(), name
            b.screenshot(shots / "1-deployments.png")

            # The curate form: every section a curate run reads, each field with its description, and no
            # finetune or scrape section.
            curate_href = b.evaluate(
                "[...document.querySelectorAll('a[href^=\"/deployments/deployment/\"]')]"
                ".find(a => a.innerText.trim() === 'curate').getAttribute('href')"
            )
            b.goto(base + curate_href + "/run")
            b.wait_for_text("Submit")
            b.wait_until_settled()
            shown = b.evaluate("[...document.querySelectorAll('.schema-form-property__label')].map(e => e.innerText)")
            labels = {label.strip().removesuffix("(Optional)").strip() for label in shown}
            assert {_title(s) for s in CurationConfig.model_fields} - {"Finetune", "Scrape"} <= labels
            assert not {"Finetune", "Scrape"} & labels
            only_finetune = {_title(f) for f in FinetuneConfig.model_fields} - {
                _title(f)
                for section in CurationConfig.model_fields.values()
                if section.annotation is not FinetuneConfig
                for f in getattr(section.annotation, "model_fields", {})
            }
            assert only_finetune and not only_finetune & labels, only_finetune & labels
            description = str(RunConfig.model_fields["batch_size"].description)
            assert " ".join(description.split())[:60] in " ".join(b.text().split())
            b.screenshot(shots / "2-curate-form.png")
            # The embedder's precision: one list of its three values, not a type switch; and the batch budget.
            assert {_title("precision"), _title("embed_batch_tokens")} <= labels
            precision_field = (
                "[...document.querySelectorAll('.schema-form-property')]"
                ".find(e => e.querySelector('.schema-form-property__label')?.innerText.trim()"
                ".startsWith('Precision'))"
            )
            b.evaluate(f"{precision_field}.scrollIntoView({{block: 'center'}})")
            shown_precision = str(b.evaluate(f"{precision_field}.innerText"))
            assert "auto" in shown_precision and "AMX" in shown_precision, shown_precision
            b.screenshot(shots / "2b-curate-form-precision.png")

            # Start a run from the form, with one input typed in, as a user would. The form is filled with
            # the deployment's parameters after it is drawn; what is typed before that is wiped, so wait for
            # one of them (out_dir) to be in its field.
            started = time.time()
            out_dir = json.dumps(str(tmp_path / "runs"))
            b.wait_for(
                f"[...document.querySelectorAll('input, textarea')].some(e => e.value === {out_dir})",
                "the deployment's parameters in the form",
            )
            dump = next(p for p in inputs if p.name == "sharegpt_dump.json")
            _submit_with_input(b, _property("inputs"), str(dump))
            [deployment] = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["curate"]))
            )
            [run] = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id={"any_": [deployment.id]})  # type: ignore[arg-type]
            )
            assert run.parameters["inputs"] == [str(dump)] and run.created.timestamp() >= started - 5

            def finished() -> bool:
                state = client.read_flow_run(run.id).state
                return state is not None and state.is_final()

            wait_until("the curate run", finished, served, timeout=300)
            state = client.read_flow_run(run.id).state
            assert state is not None and state.is_completed(), state

            # The run's page and its artifacts.
            b.goto(f"{base}/runs/flow-run/{run.id}")
            b.wait_for_text("Completed")
            b.click_text("li.p-tab", "Artifacts")
            b.wait_for_text("contamination-report")
            b.wait_until_settled()
            for key in ("curate-run-report", "curate-stage-counts", "curate-progress", "contamination-summary"):
                assert key in b.text(), key
            b.screenshot(shots / "3-run-artifacts.png")
            pages = {
                key: base + _artifact_page(b, key)
                for key in ("contamination-summary", "curate-run-report", "contamination-report")
            }

            # The summary shows the flagged pairs itself.
            b.goto(pages["contamination-summary"])
            b.wait_for_text("Flagged pairs")
            assert "demoK2l3_0" in b.text()
            assert _overflow(b) <= 0, f"the summary's table is {_overflow(b)} px wider than its column"
            b.screenshot(shots / "4-contamination-summary.png")

            # The run report's table fits the page: nothing cut off on the right.
            b.goto(pages["curate-run-report"])
            b.wait_for("!!document.querySelector('table')", "the run report's table")
            assert _overflow(b) <= 0, f"the run report's table is {_overflow(b)} px wider than its column"
            b.screenshot(shots / "5-run-report.png")

            # The link artifact opens the reviewers' report over http.
            b.goto(pages["contamination-report"])
            report_href = b.wait_for(
                "document.querySelector('a[href*=\"/chatsift/files/\"]')?.href", "the link to the report"
            )
            assert report_href.startswith(base + "/chatsift/files/") and report_href.endswith("/report.html")
            b.screenshot(shots / "6-report-link.png")
            b.goto(report_href)
            b.wait_for_text("Contamination report")
            page = b.text()
            assert "demoK2l3_0" in page and "demo-1" in page  # the verbatim pair the demo plants
            b.screenshot(shots / "7-contamination-report.png")
    finally:
        stop(served)
        serve_log.close()
    for shot in ("1-deployments", "2-curate-form", "3-run-artifacts", "7-contamination-report"):
        assert (shots / f"{shot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
