"""The Dockerfile, .dockerignore and docker-compose.yml keep the promises that matter.

No Docker engine runs the tests, so what an image and a compose project must do is read
from the files: non-root with a fixed uid, the console script as entrypoint, the
daemon's own /healthz as health check, a small build context, loopback-only ports,
credentials from the env file, and RabbitMQ's data on a volume under a fixed hostname.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]

Instruction = tuple[str, str]


def _instructions() -> list[Instruction]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _one(keyword: str) -> str:
    values = [rest for kw, rest in _final_stage() if kw == keyword]
    assert 1 == len(values), (keyword, values)
    return values[0]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(ROOT / "docker-compose.yml")
    return loaded


def _ignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (last match wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or any(
            fnmatch.fnmatchcase(part, pattern) for part in parts
        ):
            ignored = not negated
    return ignored


def test_the_image_runs_as_a_fixed_non_root_uid() -> None:
    """USER is numeric (uid:gid 10001), made by useradd with that uid: never root."""
    user = _one("USER")
    assert "10001:10001" == user
    run = " ".join(rest for kw, rest in _final_stage() if kw == "RUN")
    assert "--uid 10001" in run
    assert "--gid 10001" in run


def test_the_entrypoint_is_the_console_script_and_serve_the_default_command() -> None:
    """ENTRYPOINT ["registryd"] is pyproject's console script; CMD ["serve"]."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert ["registryd"] == json.loads(_one("ENTRYPOINT"))
    assert "registryd" in scripts
    assert ["serve"] == json.loads(_one("CMD"))


def test_the_healthcheck_asks_the_daemons_own_healthz_as_compose_does() -> None:
    """HEALTHCHECK GETs /healthz on the metrics port; compose states the same command."""
    healthcheck = _one("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--start-period=" in options
    test = json.loads(command)
    assert "/healthz" in test[-1]
    assert "REGISTRYD_METRICS_PORT" in test[-1]
    assert ["CMD", *test] == _compose()["services"]["registryd"]["healthcheck"]["test"]


def test_the_image_listens_where_a_published_port_reaches_it() -> None:
    """Inside a container /metrics must listen on 0.0.0.0; the port is exposed."""
    env = _one("ENV")
    assert "REGISTRYD_METRICS_HOST=0.0.0.0" in env
    assert "9822" == _one("EXPOSE")


def test_the_base_is_a_build_argument_with_a_slim_default() -> None:
    """ARG BASE names a slim Python image; both stages are built FROM it."""
    args = [rest for kw, rest in _instructions() if kw == "ARG" and rest.startswith("BASE=")]
    assert ["BASE=python:3.11-slim-bookworm"] == args
    froms = [rest for kw, rest in _instructions() if kw == "FROM"]
    assert ["${BASE} AS build", "${BASE}"] == froms


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".venv/bin/python", True),
        (".git/HEAD", True),
        ("tests/conftest.py", True),
        ("docs/protocol.md", True),
        ("registryd/__pycache__/daemon.cpython-311.pyc", True),
        ("registryd/daemon.py", False),
        ("registryd/store/scripts/relay_claim.lua", False),
        ("pyproject.toml", False),
        ("README.md", False),
    ],
)
def test_the_build_context_holds_the_package_only(path: str, ignored: bool) -> None:
    """.dockerignore: the venv, git, tests and caches stay out; the package goes in."""
    assert ignored == _ignored(path)


def test_compose_publishes_ports_on_loopback_only() -> None:
    """Every published port is bound to 127.0.0.1."""
    ports = [p for s in _compose()["services"].values() for p in s.get("ports", [])]
    assert ports
    assert [] == [p for p in ports if not str(p).startswith("127.0.0.1:")]


def test_compose_keeps_rabbitmq_on_a_volume_under_a_fixed_hostname() -> None:
    """Queued events and dead letters survive a re-created RabbitMQ container."""
    compose = _compose()
    rabbitmq = compose["services"]["rabbitmq"]
    assert "rabbitmq" == rabbitmq["hostname"]
    assert "rabbitmq-data:/var/lib/rabbitmq" in rabbitmq["volumes"]
    assert "rabbitmq-data" in compose["volumes"]


def test_compose_starts_registryd_after_healthy_backends_and_checks_everyone() -> None:
    """depends_on waits for healthy backends; every service has a health check."""
    services = _compose()["services"]
    assert {"rabbitmq": "service_healthy", "redis": "service_healthy"} == {
        name: dep["condition"] for name, dep in services["registryd"]["depends_on"].items()
    }
    assert [] == [name for name, service in services.items() if "healthcheck" not in service]


def test_compose_takes_every_credential_from_the_env_file() -> None:
    """No password in the file: each required variable is in config/compose.env.example."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "guest" not in text
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (ROOT / "config" / "compose.env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert {"RABBITMQ_USER", "RABBITMQ_PASSWORD", "REDIS_PASSWORD"} == required
    assert required <= defined
