"""Static checks of the production stack: docker-compose.yml, the Dockerfile and the README.

Nothing is started here (no Docker engine needed); the files are parsed and checked
against the design: Temporal on PostgreSQL without the deprecated auto-setup image,
the OMS search attributes registered, the OMS services wired to the stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"

SERVICES = [
    "postgresql",
    "temporal-admin-tools",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    "oms-worker",
    "oms-api",
]
OMS_SERVICES = ["oms-worker", "oms-api"]
SEARCH_ATTRIBUTES = {
    "OmsOrderStatus": "Keyword",
    "OmsSalesChannel": "Keyword",
    "OmsCustomerId": "Keyword",
    "OmsOrderTotal": "Double",
    "OmsLocations": "KeywordList",
    "OmsAwaitingApproval": "Bool",
    "OmsHoldReason": "Keyword",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml must be a mapping"
    found = document.get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no `services` mapping"
    return found


def _service(services: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict), f"service {name!r} must be a mapping"
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The service environment as a dict, from either the mapping or the list form."""
    raw = service.get("environment") or {}
    if isinstance(raw, dict):
        return {str(key): "" if value is None else str(value) for key, value in raw.items()}
    env: dict[str, str] = {}
    for item in raw:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def _command_text(service: dict[str, Any]) -> str:
    """Entrypoint and command joined into one string, whatever their YAML form."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, list):
            parts.extend(str(item) for item in value)
        elif value is not None:
            parts.append(str(value))
    return "\n".join(parts)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in raw.items()
    }


def _published_ports(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(host port, container port) pairs from short ("8233:8080") or long port syntax."""
    pairs: set[tuple[str, str]] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            pairs.add((str(port.get("published", "")), str(port.get("target", ""))))
            continue
        spec = str(port).split("/", 1)[0]  # drop "/tcp"
        pieces = spec.split(":")
        if len(pieces) >= 2:
            pairs.add((pieces[-2], pieces[-1]))
        else:
            pairs.add(("", pieces[0]))
    return pairs


def test_every_required_service_exists(services: dict[str, Any]) -> None:
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks services {missing}; it has {sorted(services)}"


def test_readme_names_every_compose_service(services: dict[str, Any]) -> None:
    assert README.is_file(), f"{README} is missing; it must document the docker-compose stack"
    text = README.read_text(encoding="utf-8")
    names = list(dict.fromkeys([*SERVICES, *services]))
    undocumented = [name for name in names if f"`{name}`" not in text]
    assert not undocumented, (
        f"README.md must name each docker-compose service in backticks; missing: "
        f"{', '.join(f'`{name}`' for name in undocumented)}"
    )


def test_no_deprecated_auto_setup_image(services: dict[str, Any]) -> None:
    offenders = {
        name: service.get("image")
        for name, service in services.items()
        if "auto-setup" in str(service.get("image", ""))
    }
    assert not offenders, f"temporalio/auto-setup is deprecated, do not use it: {offenders}"


def test_postgresql_has_healthcheck(services: dict[str, Any]) -> None:
    postgresql = _service(services, "postgresql")
    assert str(postgresql.get("image", "")).startswith("postgres:"), "postgresql: postgres image"
    test = postgresql.get("healthcheck", {}).get("test")
    assert "pg_isready" in str(test), f"postgresql healthcheck must use pg_isready, got {test!r}"


def test_schema_job_sets_up_both_temporal_schemas(services: dict[str, Any]) -> None:
    job = _service(services, "temporal-admin-tools")
    assert "temporalio/admin-tools" in str(job.get("image")), "schema job: admin-tools image"
    assert _depends_on(job).get("postgresql") == "service_healthy", (
        "temporal-admin-tools must wait for postgresql to be healthy"
    )
    script = _command_text(job)
    assert "temporal-sql-tool" in script, "schema job must run temporal-sql-tool"
    for path in (
        "/etc/temporal/schema/postgresql/v12/temporal/versioned",
        "/etc/temporal/schema/postgresql/v12/visibility/versioned",
    ):
        assert path in script, f"schema job must apply {path}"


def test_temporal_server_waits_for_schema(services: dict[str, Any]) -> None:
    temporal = _service(services, "temporal")
    assert str(temporal.get("image", "")).startswith("temporalio/server:"), (
        f"temporal must use temporalio/server, got {temporal.get('image')!r}"
    )
    assert _depends_on(temporal).get("temporal-admin-tools") == "service_completed_successfully", (
        "temporal must start only after the schema job completed successfully"
    )
    env = _environment(temporal)
    assert env.get("DB") == "postgres12", f"temporal: DB must be postgres12, got {env.get('DB')!r}"
    assert env.get("POSTGRES_SEEDS") == "postgresql", "temporal: POSTGRES_SEEDS must be postgresql"
    assert ("7233", "7233") in _published_ports(temporal), "temporal must publish port 7233"
    assert temporal.get("healthcheck"), (
        "temporal needs a healthcheck (the namespace job waits on it)"
    )


def test_namespace_job_registers_search_attributes(services: dict[str, Any]) -> None:
    job = _service(services, "temporal-create-namespace")
    assert "temporalio/admin-tools" in str(job.get("image")), "namespace job: admin-tools image"
    script = _command_text(job)
    assert "namespace create" in script, "namespace job must create the namespace"
    assert "search-attribute create" in script, "namespace job must create search attributes"
    assert "already exists" in script, "namespace job must tolerate existing search attributes"
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert re.search(rf"\b{name}\b", script), f"namespace job does not register {name}"
        assert re.search(rf"\b{name}\b[^\n]*?\b{kind}\b", script), (
            f"namespace job must register {name} with type {kind}"
        )


def test_temporal_ui_on_port_8233(services: dict[str, Any]) -> None:
    ui = _service(services, "temporal-ui")
    assert str(ui.get("image", "")).startswith("temporalio/ui:"), "temporal-ui: temporalio/ui"
    ports = _published_ports(ui)
    assert ("8233", "8080") in ports, f"temporal-ui must map host 8233 to 8080, got {ports}"
    assert _environment(ui).get("TEMPORAL_ADDRESS") == "temporal:7233", (
        "temporal-ui: TEMPORAL_ADDRESS must be temporal:7233"
    )


@pytest.mark.parametrize("name", OMS_SERVICES)
def test_oms_service_wiring(services: dict[str, Any], name: str) -> None:
    service = _service(services, name)
    assert service.get("build"), f"{name} must be built from this repository (build: .)"
    assert name in _command_text(service), f"{name} must run the `{name}` console script"
    assert _depends_on(service).get("temporal-create-namespace") == (
        "service_completed_successfully"
    ), f"{name} must wait for temporal-create-namespace to complete"

    env = _environment(service)
    url = env.get("OMS_DATABASE_URL", "")
    parts = urlsplit(url)
    assert parts.scheme.startswith("postgresql") and parts.hostname == "postgresql", (
        f"{name}: OMS_DATABASE_URL must point at the postgresql service, got {url!r}"
    )
    address = env.get("OMS_TEMPORAL_ADDRESS", "")
    assert address.rsplit(":", 1)[0] == "temporal", (
        f"{name}: OMS_TEMPORAL_ADDRESS must point at the temporal service, got {address!r}"
    )
    for key in ("OMS_TEMPORAL_NAMESPACE", "OMS_TASK_QUEUE", "OMS_WEBHOOK_SECRET"):
        assert env.get(key), f"{name}: {key} must be set"


def test_api_publishes_port_and_health(services: dict[str, Any]) -> None:
    api = _service(services, "oms-api")
    assert ("8080", "8080") in _published_ports(api), "oms-api must publish 8080:8080"
    env = _environment(api)
    assert env.get("OMS_API_HOST") == "0.0.0.0", "oms-api must listen on 0.0.0.0 in a container"
    assert "/health" in str(api.get("healthcheck", {}).get("test")), (
        "oms-api healthcheck must call /health"
    )


def test_dockerfile_defaults_to_worker() -> None:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    instructions = [
        line.strip()
        for line in lines
        if re.match(r"\s*(CMD|ENTRYPOINT)\b", line, flags=re.IGNORECASE)
    ]
    assert instructions, "Dockerfile has no CMD or ENTRYPOINT"
    assert any("oms-worker" in line for line in instructions), (
        f"the image must run oms-worker by default; CMD/ENTRYPOINT lines: {instructions}"
    )
    assert re.search(r"^\s*USER\s+(?!root\b|0\b)\S+", "\n".join(lines), flags=re.MULTILINE), (
        "the Dockerfile must switch to a non-root USER"
    )


REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?(?P<message>[^}]+)\}$")


def test_compose_runs_the_oms_in_production_mode_with_required_secrets(
    services: dict[str, Any],
) -> None:
    """No well-known secret: each is required (`${VAR:?message}`), and the OMS runs with
    OMS_ENV=production, so it refuses a demo or short value at start."""
    for name in OMS_SERVICES:
        env = _environment(_service(services, name))
        assert env.get("OMS_ENV") == "production", f"{name}: OMS_ENV must be production"
        secret = REQUIRED.match(env.get("OMS_WEBHOOK_SECRET", ""))
        assert secret and secret["name"] == "OMS_WEBHOOK_SECRET", (
            f"{name}: OMS_WEBHOOK_SECRET must be required with ${{OMS_WEBHOOK_SECRET:?...}}, "
            f"got {env.get('OMS_WEBHOOK_SECRET')!r}"
        )
        assert "openssl rand" in secret["message"], "the message says how to make one"
    api = _environment(_service(services, "oms-api"))
    key = REQUIRED.match(api.get("OMS_BOOTSTRAP_ADMIN_KEY", ""))
    assert key and key["name"] == "OMS_BOOTSTRAP_ADMIN_KEY", (
        "oms-api: OMS_BOOTSTRAP_ADMIN_KEY must be required with ${OMS_BOOTSTRAP_ADMIN_KEY:?...}"
    )
    # the worker has no use for the admin key
    assert "OMS_BOOTSTRAP_ADMIN_KEY" not in _environment(_service(services, "oms-worker"))


def test_compose_has_no_demo_secret_defaults() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for demo in ("change-me", "changeme", "dev-secret", "dev-admin"):
        assert demo not in text, f"docker-compose.yml still holds the demo value {demo!r}"
    defaults = re.findall(r"\$\{(OMS_(?:WEBHOOK_SECRET|BOOTSTRAP_ADMIN_KEY)):?-", text)
    assert not defaults, f"secrets with a default value: {defaults}"


def test_readme_says_how_to_generate_the_production_secrets() -> None:
    text = README.read_text(encoding="utf-8")
    production = text[text.index("## Production") :]
    for needed in ("OMS_ENV=production", "OMS_WEBHOOK_SECRET", "OMS_BOOTSTRAP_ADMIN_KEY"):
        assert needed in production, f"README's production section must name {needed}"
    assert "openssl rand -hex 32" in production, "README: how to generate the secrets"
