"""The GPU check script (bench/gpu.py) on this machine, which has no GPU: its inputs build from the
real sample, `run` says in one line that nothing ran and exits 0, and `run --cpu` takes the training
paths on the CPU with a tiny model, so that a lent GPU's few minutes are not spent on a broken script.
(The contamination part needs prepare's --embedder, a 7 s save of MiniLM; `run --cpu` with it was run
by hand: flagged sets identical.)"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from bench.gpu import main  # noqa: E402

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, prefect_server: None, shared_data: Path) -> Path:
    folder = tmp_path_factory.mktemp("gpu-inputs")
    args = ["prepare", str(folder), "--shared", str(shared_data.parent), "--conversations", "12", "--seq-len", "512"]
    assert main([*args, "--items-per-benchmark", "8"]) == 0
    return folder


def test_without_cuda_it_checks_the_inputs_and_says_nothing_ran(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: `run` would take the GPU paths")
    assert main(["run", str(inputs)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("bench.gpu: no CUDA device; inputs checked (") and line.endswith("nothing ran")
    assert "no minilm/" in line


def test_every_gpu_path_runs_on_the_cpu(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(inputs), "--cpu", "--steps", "2", "--parts", "finetune,trl"]) == 0
    out = capsys.readouterr().out
    assert "finetune (tiny Llama, LoRA, fp32, sdpa):" in out
    assert "supervised tokens" in out and "(manifest: equal)" in out
    assert "chatsift finetune / TRL tokens/s:" in out
    assert "FAILED" not in out


def test_the_contamination_part_without_its_embedder_stops_before_any_work(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(inputs), "--cpu", "--parts", "contamination"]) == 2
    assert capsys.readouterr().out.splitlines()[-1].endswith("run prepare with --embedder")
