"""Each deployment's form (its parameter schema) holds only the config sections its flow reads, each
field with its description; the default parameters match the form."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flows.serve import UNREAD_SECTIONS, chatsift_deployments
from schemas.config import CurationConfig, FinetuneConfig


@pytest.fixture(scope="module")
def deployments() -> dict[str, Any]:
    built = chatsift_deployments(inputs=["in"], out_dir="runs", config=CurationConfig())
    return {d.name: d for d in built}


def _sections(deployment: Any) -> set[str]:
    return set(deployment._parameter_openapi_schema.definitions["CurationConfig"]["properties"])


def test_curate_forms_hold_no_finetune_or_scrape_fields(deployments: dict[str, Any]) -> None:
    every = set(CurationConfig.model_fields)
    for name in ("curate", "recurate-nightly", "contamination", "shards"):
        schema = deployments[name]._parameter_openapi_schema
        assert _sections(deployments[name]) == every - {"finetune", "scrape"}, name
        assert not {"finetune", "scrape"} & set(schema.properties["config"]["default"]), name
        assert not {"finetune", "scrape"} & set(deployments[name].parameters["config"]), name
    # scrape reads [scrape]: the sections are pruned per deployment, never in a shared default
    assert _sections(deployments["scrape"]) == every - {"finetune"}
    assert "scrape" in deployments["scrape"].parameters["config"]
    assert set(UNREAD_SECTIONS) == {d.flow_name for d in deployments.values()} - {"finetune"}


def test_the_finetune_form_holds_finetune_fields_only(deployments: dict[str, Any]) -> None:
    schema = deployments["finetune"]._parameter_openapi_schema
    config = schema.definitions["FinetuneConfig"]["properties"]
    assert set(config) == set(FinetuneConfig.model_fields)
    assert "CurationConfig" not in schema.definitions


def test_every_field_of_every_form_has_a_description(deployments: dict[str, Any]) -> None:
    for deployment in deployments.values():
        definitions = deployment._parameter_openapi_schema.definitions
        missing = [
            f"{deployment.name}: {model}.{field}"
            for model, definition in definitions.items()
            for field, spec in definition.get("properties", {}).items()
            if not spec.get("description")
        ]
        assert missing == []


def test_no_description_loses_text_to_the_forms_markdown(deployments: dict[str, Any]) -> None:
    # The UI renders descriptions as markdown with HTML: "<out_dir>/cache" showed as "/cache". Angle
    # brackets are kept only inside `code`.
    for deployment in deployments.values():
        for model, definition in deployment._parameter_openapi_schema.definitions.items():
            for field, spec in definition.get("properties", {}).items():
                outside_code = re.sub(r"`[^`]*`", "", spec.get("description", ""))
                assert not re.search(r"<[A-Za-z/]", outside_code), f"{model}.{field}: {spec['description']}"


def test_a_run_started_from_a_pruned_form_gets_the_defaults_of_the_left_out_sections(
    deployments: dict[str, Any],
) -> None:
    config = CurationConfig.model_validate(deployments["curate"].parameters["config"])
    assert config.finetune == FinetuneConfig() and config == CurationConfig()
