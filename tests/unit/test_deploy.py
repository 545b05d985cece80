"""The deployment artefacts: generated files in sync, configs the real tools and loaders accept."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load as load_exporter_config
from remediator.app import load_checked as load_remediator_config
from tests.prereqs import require_binary
from tools import deploy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET_NAMES = ("webhook_token", "postgres_dsn", "mastertrade_dsn", "rabbitmq_password", "amqp_url")
OFFICIAL_IMAGES = (
    "postgres:", "redis:", "rabbitmq:", "prom/prometheus:", "prom/alertmanager:", "prom/node-exporter:",
    "grafana/grafana:",
)  # fmt: skip


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def with_secrets(text: str, directory: Path) -> str:
    """Point /run/secrets at a directory holding a value for every secret file."""
    directory.mkdir(exist_ok=True)
    for name in SECRET_NAMES:
        (directory / name).write_text("postgresql://u:p@localhost:5432/db" if "dsn" in name else "secret-value")
    return text.replace("/run/secrets", str(directory))


def kubernetes_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_generated_deployment_files_are_in_sync_with_profiles_and_rules() -> None:
    for path, text in deploy.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run python -m tools.deploy"


def test_prometheus_rule_carries_every_alert_and_recording_rule_of_the_profile() -> None:
    rule = yaml.safe_load((DEPLOY / "kubernetes/prometheusrule.yaml").read_text())
    shipped = set()
    for name in deploy.profile_rule_files():
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            shipped |= {r.get("alert") or r["record"] for r in group["rules"]}
    generated = {r.get("alert") or r["record"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert generated == shipped
    assert rule["kind"] == "PrometheusRule"


@pytest.mark.parametrize("name", ["exporter", "remediator"])
def test_compose_and_kubernetes_configs_pass_the_services_own_checks(name: str, tmp_path: Path) -> None:
    compose = (DEPLOY / f"compose/{name}.yml").read_text()
    config_map = yaml.safe_load((DEPLOY / "kubernetes/configmap.yaml").read_text())
    assert yaml.safe_load(config_map["data"][f"{name}.yml"]) == yaml.safe_load(compose)
    path = tmp_path / f"{name}.yml"
    path.write_text(with_secrets(compose, tmp_path / "secrets"))
    loader = load_exporter_config if name == "exporter" else load_remediator_config
    loader(path)  # a ConfigError here fails the test with located errors


def test_prometheus_config_passes_promtool_with_the_shipped_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    shutil.copy(DEPLOY / "prometheus/prometheus.yml", tmp_path / "prometheus.yml")
    rules = tmp_path / "rules"  # where compose mounts alert_rules/
    rules.mkdir()
    for path in (ROOT / "alert_rules").glob("*.yml"):
        shutil.copy(path, rules / path.name)
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(deploy.profile_rule_files())} rule files found" in result.stdout + result.stderr


def test_alertmanager_config_passes_amtool_and_routes_to_the_remediator_with_bearer_auth() -> None:
    amtool = require_binary("amtool")
    path = DEPLOY / "alertmanager/alertmanager.yml"
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])
    webhook = receiver["webhook_configs"][0]
    assert webhook["url"].endswith("/webhook")
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/webhook_token"


def test_compose_file_is_valid_with_official_images_health_checks_and_file_secrets() -> None:
    compose_binary = require_binary("docker-compose")
    path = DEPLOY / "docker-compose.yml"
    result = run([compose_binary, "-f", str(path), "config", "-q"], cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    expected = {"postgres", "redis", "rabbitmq", "prometheus", "alertmanager", "grafana", "node-exporter"}
    assert expected | {"exporter", "remediator", "sandbox"} <= set(services)
    for name, service in services.items():
        if name in expected:
            assert service["image"].startswith(OFFICIAL_IMAGES), name
            assert "healthcheck" in service, name
        else:
            assert service["image"] == "tradeops:latest", name  # its health check is the image's HEALTHCHECK
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"}
    mounted = [volume.split(":")[0] for s in services.values() for volume in s.get("volumes", [])]
    for source in mounted:
        if source.startswith("."):
            assert (DEPLOY / source).exists(), source
    assert "PASSWORD=" not in path.read_text(), "passwords come from secret files"


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), source


def test_kubernetes_manifests_are_complete_and_non_root() -> None:
    documents = kubernetes_documents()
    kinds = {d["kind"] for d in documents}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "ServiceMonitor", "PrometheusRule", "Alertmanager"} <= kinds
    secrets = {d["metadata"]["name"] for d in documents if d["kind"] == "Secret"}
    for alertmanager in (d for d in documents if d["kind"] == "Alertmanager"):
        assert {alertmanager["spec"]["configSecret"], *alertmanager["spec"]["secrets"]} <= secrets
    service_ports = {p["name"] for d in documents if d["kind"] == "Service" for p in d["spec"]["ports"]}
    for document in documents:
        assert document["apiVersion"]
        assert document["metadata"]["name"]
        if document["kind"] == "Deployment":
            pod = document["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                assert "readinessProbe" in container
                assert "livenessProbe" in container
        if document["kind"] == "ServiceMonitor":
            assert {e["port"] for e in document["spec"]["endpoints"]} <= service_ports
    kustomization = yaml.safe_load((DEPLOY / "kubernetes/kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).exists(), resource
