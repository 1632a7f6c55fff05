"""Options that slipped past validation: loose scalar types, language codes no detector answers,
MinHash permutation counts no run can compute, and sections that contradict each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from pydantic import ValidationError

from schemas.config import CurationConfig, LanguageConfig, MinHashConfig
from schemas.config.clean import base_language, detectable_languages
from schemas.config.dedupe import MAX_MINHASH_PERMUTATIONS
from schemas.config.file import load_config
from schemas.errors import ConfigError


def _write(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return path


@pytest.mark.parametrize(
    ("toml", "key", "shown"),
    [
        ("[shape]\nmin_turns = true\n", "shape.min_turns", "got true"),
        ('[shape]\nmin_turns = "5"\n', "shape.min_turns", 'got "5"'),
        ("[shape]\nmin_turns = 2.0\n", "shape.min_turns", "got 2.0"),
        ("[run]\ncache = 1\n", "run.cache", "got 1"),
        ('[run]\ncache = "yes"\n', "run.cache", 'got "yes"'),
        ("[language]\nmin_share = true\n", "language.min_share", "got true"),
        ("[run]\nmax_workers = false\n", "run.max_workers", "got false"),
    ],
)
def test_a_scalar_option_takes_only_its_own_type(tmp_path: Path, toml: str, key: str, shown: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, toml))
    assert key in str(error.value) and shown in str(error.value)


def test_a_float_option_takes_a_whole_number_as_toml_and_the_run_form_write_it(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[language]\nmin_share = 1\n[dedupe_minhash]\nthreshold = 1\n"))
    assert config.language.min_share == 1.0 and isinstance(config.language.min_share, float)
    assert config.dedupe_minhash.threshold == 1.0


def test_lists_still_fill_tuple_options_and_a_dumped_config_validates_again() -> None:
    """What the Prefect run form sends: the JSON dump of a config, lists and all."""
    data: dict[str, Any] = CurationConfig().model_dump(mode="json")
    data["language"]["allowed"] = ["en", "de"]
    config = CurationConfig.model_validate(data)
    assert config.language.allowed == ("en", "de")
    assert CurationConfig.model_validate_json(config.model_dump_json()) == config


def test_detectable_languages_are_the_codes_the_language_stage_answers() -> None:
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    # The stage sums regional variants ("zh-cn", "zh-tw") into one code, as detectable_languages does.
    assert detectable_languages() == {lang.split("-")[0] for lang in factory.get_lang_list()}
    assert {"en", "de", "zh"} <= detectable_languages()


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        (["klingon"], "use one of af ar"),
        (["eng"], "did you mean 'en'"),
        (["english"], "did you mean 'en'"),
        ([], "an empty list drops every conversation"),
    ],
)
def test_a_language_no_detector_answers_is_refused_with_the_nearest_codes(
    tmp_path: Path, allowed: list[str], expected: str
) -> None:
    toml = f"[language]\nallowed = {allowed!r}\n".replace("'", '"')
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, toml))
    assert "language.allowed" in str(error.value) and expected in str(error.value)


def test_known_language_codes_pass() -> None:
    assert LanguageConfig(allowed=("en", "zh", "sw")).allowed == ("en", "zh", "sw")


def test_a_regional_or_upper_case_code_names_its_language() -> None:
    """The stage compares base codes ("zh-CN" and "ZH" are "zh"), so these are not typos."""
    assert LanguageConfig(allowed=("EN", "zh-cn", "pt-BR")).allowed == ("EN", "zh-cn", "pt-BR")
    assert [base_language(c) for c in ("EN", "zh-cn", "pt-BR")] == ["en", "zh", "pt"]


def test_minhash_permutations_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, "[dedupe_minhash]\nbands = 100000\nrows = 100000\n"))
    assert "dedupe_minhash" in str(error.value) and "bands x rows = 100000 x 100000" in str(error.value)
    assert MinHashConfig(bands=32, rows=32).bands * 32 == MAX_MINHASH_PERMUTATIONS


def test_an_empty_contamination_roles_list_is_refused_while_the_check_is_on() -> None:
    with pytest.raises(ValidationError, match="roles is empty"):
        CurationConfig.model_validate({"contamination": {"roles": []}})
    assert CurationConfig.model_validate({"contamination": {"roles": [], "enabled": False}})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"split": {"max_tokens": 4096}, "shards": {"max_seq_len": 512}},
            "split.max_tokens=4096 is over shards.max_seq_len=512",
        ),
        ({"split": {"max_tokens": 12}}, "split.max_tokens=12 leaves no text in a round"),
        ({"run": {"dask_address": "tcp://127.0.0.1:8786"}}, 'run.task_runner is "auto", which ignores it'),
        ({"run": {"task_runner": "dask", "max_workers": 4}}, "run.max_workers sizes the"),
    ],
)
def test_sections_that_contradict_each_other_fail_the_curate_run_check(data: dict[str, Any], expected: str) -> None:
    config = CurationConfig.model_validate(data)  # each section is valid alone ...
    with pytest.raises(ConfigError, match="(?s)" + expected.replace("(", r"\(").replace(".", r"\.")):
        config.check_curate_run()  # ... but a curate run of them is useless


def test_the_defaults_and_the_demo_pass_the_curate_run_check() -> None:
    from demo.inputs import DEMO_CONFIG

    CurationConfig().check_curate_run()
    DEMO_CONFIG.check_curate_run()
