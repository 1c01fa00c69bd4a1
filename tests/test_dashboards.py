"""Static checks of the monitoring half of the production stack: Prometheus and Grafana in
docker-compose.yml, the Prometheus configuration (deploy/prometheus) and the provisioned
Grafana data source and dashboard (deploy/grafana).

Nothing is started (no Docker engine needed): the files are parsed and held against the
compose services and against the metric names the code exports, so a renamed metric or
a moved port fails here rather than as an empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from activities import metrics as worker_metrics
from api.metrics import ApiMetrics, BusinessCollector, Snapshot

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards"
DASHBOARDS = GRAFANA / "dashboards"

# Temporal server metrics the dashboard reads (the server's Prometheus exporter, enabled by
# PROMETHEUS_ENDPOINT; names as in Temporal's cluster metrics reference): requests and
# latency of each service, labelled service_name and operation.
TEMPORAL_SERVER_METRICS = {"service_requests": "counter", "service_latency": "histogram"}

# series names Prometheus stores for one metric family of each type
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "unknown": ("",),
}
# the Temporal SDK's and server's own exporters: counters without `_total`, no `_created`
NATIVE_SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def _series(name: str, kind: str, suffixes: dict[str, tuple[str, ...]]) -> set[str]:
    return {name + suffix for suffix in suffixes[kind]}


def _collected(source: CollectorRegistry | Collector) -> set[str]:
    names: set[str] = set()
    for family in source.collect():
        names |= _series(family.name, family.type, SUFFIXES)
    return names


def sdk_metric_names() -> set[str]:
    """The Temporal SDK metrics README's Metrics section lists (a `..._latency` is a
    histogram, the others counters or gauges)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    listed = set(re.findall(r"`(temporal_[a-z0-9_]+)`", section))
    assert len(listed) >= 8, f"README's Metrics section lists too few SDK metrics: {listed}"
    names: set[str] = set()
    for name in listed:
        kind = "histogram" if name.endswith("_latency") else "counter"
        names |= _series(name, kind, NATIVE_SUFFIXES)
    return names


def exported_metric_names() -> set[str]:
    """Every series name the stack's targets export that a query may use."""
    snapshot = Snapshot(
        orders={"IN_FULFILLMENT": 1},
        held={"routing": 1},
        approvals_pending=0,
        backorder_lines=0,
        work_orders={"OPEN": 0},
        store_up=True,
    )
    names = _collected(ApiMetrics().registry) | _collected(BusinessCollector(snapshot))
    names |= _collected(worker_metrics.REGISTRY)
    names |= sdk_metric_names()
    for name, kind in TEMPORAL_SERVER_METRICS.items():
        names |= _series(name, kind, NATIVE_SUFFIXES)
    return names


PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label
    matchers, ranges, grouping clauses and Grafana variables are removed, other than
    functions and aggregations (followed by `(`) and keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if word.lower() in PROMQL_WORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def test_promql_metric_names_reads_the_selected_metrics() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{route=~"/v1/.*"}'
        "[$__rate_interval]))) / clamp_min(sum(y_total) + on(job) z, 1e-9) or vector(0)"
    )
    assert promql_metric_names(expr) == {"x_bucket", "y_total", "z"}


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "docker-compose.yml must be a mapping"
    found = document.get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    return {k: v for k, _, v in (str(item).partition("=") for item in raw)}


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def listening_ports(name: str, service: dict[str, Any]) -> set[int]:
    """The container ports a service listens on, as compose says: its published and
    exposed ports and the addresses its environment gives the process."""
    ports: set[int] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.add(int(port["target"]))
        else:
            ports.add(int(str(port).split("/", 1)[0].rsplit(":", 1)[-1]))
    ports |= {int(str(port).split("/", 1)[0]) for port in service.get("expose") or []}
    env = _environment(service)
    if "OMS_API_PORT" in env:
        ports.add(int(env["OMS_API_PORT"]))
    for key in ("OMS_WORKER_METRICS_ADDRESS", "OMS_WORKER_APP_METRICS_ADDRESS"):
        if env.get(key):
            ports.add(_port(env[key]))
    if env.get("PROMETHEUS_ENDPOINT"):
        ports.add(_port(env["PROMETHEUS_ENDPOINT"]))
    return ports


def test_every_service_has_a_healthcheck_or_says_why_not(services: dict[str, Any]) -> None:
    missing = []
    for name, service in services.items():
        check = service.get("healthcheck")
        reason = service.get("x-no-healthcheck")
        if isinstance(check, dict) and check.get("test") and not check.get("disable"):
            assert not reason, f"{name}: a healthcheck and a reason for having none"
            continue
        if not (isinstance(reason, str) and len(reason.split()) >= 3):
            missing.append(name)
    assert not missing, (
        f"services without a healthcheck or an `x-no-healthcheck: <reason>`: {missing}"
    )


@pytest.mark.parametrize(
    ("name", "port", "variable"),
    [
        ("prometheus", 9090, "PROMETHEUS_PORT"),
        ("grafana", 3000, "GRAFANA_PORT"),
    ],
)
def test_monitoring_services_use_pinned_images_and_ports_from_variables(
    services: dict[str, Any], name: str, port: int, variable: str
) -> None:
    service = services.get(name)
    assert isinstance(service, dict), f"docker-compose.yml has no service {name!r}"
    image = str(service.get("image", ""))
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest" and re.search(r"\d", tag), (
        f"{name}: pin the image to a version tag, got {image!r}"
    )
    published = [
        p for p in service.get("ports") or [] if isinstance(p, dict) and p.get("target") == port
    ]
    assert published, f"{name}: publish container port {port} (long syntax)"
    assert published[0].get("published") == f"${{{variable}:-{port}}}", (
        f"{name}: the host port comes from {variable}, default {port}"
    )


def test_worker_and_temporal_metrics_listen_beyond_localhost(services: dict[str, Any]) -> None:
    """The settings default to 127.0.0.1; in a container Prometheus could not reach them."""
    worker = _environment(services["oms-worker"])
    for key in ("OMS_WORKER_METRICS_ADDRESS", "OMS_WORKER_APP_METRICS_ADDRESS"):
        assert worker.get(key, "").startswith("0.0.0.0:"), f"oms-worker: {key} on 0.0.0.0"
    assert _port(worker["OMS_WORKER_METRICS_ADDRESS"]) != _port(
        worker["OMS_WORKER_APP_METRICS_ADDRESS"]
    )
    temporal = _environment(services["temporal"])
    assert temporal.get("PROMETHEUS_ENDPOINT", "").startswith("0.0.0.0:"), (
        "temporal: PROMETHEUS_ENDPOINT turns the server's metrics on (0.0.0.0:<port>)"
    )


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of the service's bind mounts from this repo."""
    found: dict[str, Path] = {}
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if source.startswith("./"):
            found[rest.split(":", 1)[0]] = ROOT / source[2:]
    return found


def test_monitoring_configuration_is_mounted_from_the_repository(
    services: dict[str, Any],
) -> None:
    prometheus = _mounts(services["prometheus"])
    assert prometheus.get("/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    command = " ".join(str(part) for part in services["prometheus"].get("command") or [])
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    grafana = _mounts(services["grafana"])
    assert grafana.get("/etc/grafana/provisioning") == GRAFANA / "provisioning"
    for path in [*prometheus.values(), *grafana.values()]:
        assert path.exists(), f"mounted but missing: {path.relative_to(ROOT)}"


# --------------------------------------------------------------------------- Prometheus


def scrape_targets() -> dict[str, list[tuple[str, int]]]:
    """job -> (host, port) of each static target and DNS service discovery name."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(config, dict) and config.get("scrape_configs"), "no scrape_configs"
    jobs: dict[str, list[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        name = job["job_name"]
        assert name not in jobs, f"job {name!r} twice"
        targets: list[tuple[str, int]] = []
        for static in job.get("static_configs") or []:
            for target in static["targets"]:
                host, _, port = str(target).rpartition(":")
                targets.append((host, int(port)))
        for sd in job.get("dns_sd_configs") or []:
            assert sd.get("type", "SRV") == "A", f"{name}: A records carry no port: set type A"
            targets.extend((str(host), int(sd["port"])) for host in sd["names"])
        assert targets, f"job {name!r} scrapes nothing"
        jobs[name] = targets
    return jobs


def test_prometheus_scrapes_services_and_ports_compose_defines(
    services: dict[str, Any],
) -> None:
    for job, targets in scrape_targets().items():
        for host, port in targets:
            if job == "prometheus" and host == "localhost":
                assert port == 9090
                continue
            assert host in services, f"{job}: {host} is not a docker-compose service"
            ports = listening_ports(host, services[host])
            assert port in ports, f"{job}: {host} does not listen on {port} ({sorted(ports)})"


def test_prometheus_scrapes_the_api_every_worker_and_the_temporal_server(
    services: dict[str, Any],
) -> None:
    scraped = {target for targets in scrape_targets().values() for target in targets}
    api = _environment(services["oms-api"])
    worker = _environment(services["oms-worker"])
    temporal = _environment(services["temporal"])
    expected = {
        ("oms-api", int(api["OMS_API_PORT"])),
        ("oms-worker", _port(worker["OMS_WORKER_METRICS_ADDRESS"])),
        ("oms-worker", _port(worker["OMS_WORKER_APP_METRICS_ADDRESS"])),
        ("temporal", _port(temporal["PROMETHEUS_ENDPOINT"])),
    }
    assert expected <= scraped, f"not scraped: {sorted(expected - scraped)}"
    # the worker runs replicas: a static target would reach one of them
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    for job in config["scrape_configs"]:
        statics = [t for s in job.get("static_configs") or [] for t in s["targets"]]
        assert not [t for t in statics if t.startswith("oms-worker:")], (
            f"{job['job_name']}: find the worker replicas with dns_sd_configs"
        )


# --------------------------------------------------------------------------- Grafana


def datasource_uids() -> set[str]:
    uids: set[str] = set()
    for path in sorted(DATASOURCES.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for source in document.get("datasources") or []:
            assert source["type"] == "prometheus"
            assert source["url"] == "http://prometheus:9090", "the compose service `prometheus`"
            uids.add(source["uid"])
    assert uids, "no provisioned data source"
    return uids


def dashboards() -> dict[str, dict[str, Any]]:
    found = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }
    assert found, "no dashboard in deploy/grafana/dashboards"
    return found


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard.get("panels") or []:
        panels.append(panel)
        panels.extend(panel.get("panels") or [])  # a collapsed row's
    return panels


def test_dashboards_are_provisioned_from_the_mounted_folder(services: dict[str, Any]) -> None:
    grafana = _mounts(services["grafana"])
    folders = {
        provider["options"]["path"]
        for path in sorted(DASHBOARD_PROVIDERS.glob("*.yml"))
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    }
    assert folders, "no dashboard provider"
    for folder in folders:
        assert grafana.get(folder) == DASHBOARDS, f"{folder} is not deploy/grafana/dashboards"
    home = _environment(services["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        folder, _, name = home.rpartition("/")
        assert folder in folders and name in dashboards(), f"home dashboard {home} missing"


def test_dashboard_queries_use_only_metrics_the_code_exports() -> None:
    exported = exported_metric_names()
    uids = datasource_uids()
    unknown: dict[str, set[str]] = {}
    for file, dashboard in dashboards().items():
        assert dashboard.get("uid") and dashboard.get("title"), file
        ids = [panel["id"] for panel in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{file}: panel ids repeat"
        for panel in _panels(dashboard):
            if panel.get("type") == "row":
                continue
            where = f"{file}: {panel.get('title')!r}"
            assert panel.get("targets"), f"{where} has no query"
            for target in panel["targets"]:
                source = target.get("datasource") or panel.get("datasource") or {}
                assert source.get("uid") in uids, f"{where}: unknown data source {source}"
                names = promql_metric_names(target["expr"])
                assert names, f"{where}: no metric in {target['expr']!r}"
                if names - exported:
                    unknown[where] = names - exported
    assert not unknown, f"queries of metrics nothing exports: {unknown}"


def test_dashboard_shows_what_operators_asked_for() -> None:
    """Orders by status, held orders by reason, workflow task latency, activity failures
    and the API's latency by route (p50 and p95)."""
    exprs = [
        target["expr"]
        for dashboard in dashboards().values()
        for panel in _panels(dashboard)
        for target in panel.get("targets") or []
    ]

    def shown(metric: str, *fragments: str) -> bool:
        return any(
            metric in promql_metric_names(e) and all(f in e for f in fragments) for e in exprs
        )

    assert shown("oms_orders", "status")
    assert shown("oms_http_responses_total", 'route="/v1/orders"', 'status="201"')
    assert shown("oms_orders_held", "reason")
    assert shown("temporal_workflow_task_execution_latency_bucket", "histogram_quantile")
    assert shown("temporal_activity_execution_failed")
    assert shown("oms_stage_failures_total")
    for quantile in ("0.5", "0.95"):
        assert shown(
            "oms_http_request_duration_seconds_bucket", f"histogram_quantile({quantile},", "route"
        ), f"API latency p{quantile} by route"
    assert shown("service_requests"), "the Temporal server's requests"
