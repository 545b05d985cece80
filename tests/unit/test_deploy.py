"""The deployment artefacts: generated files in sync, configs the real tools and loaders accept, and what each
deployment exposes (compose publishes only Grafana and the console, on loopback; Kubernetes configs name the
platform, never the sandbox; the HA overlay really runs shared state)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.config import ConfigError, load_config
from common.webconfig import load_web_config
from exporter.config import load as load_exporter_config
from remediator.app import load_checked as load_remediator_config
from tests.prereqs import require_binary
from tests.unit.test_artefacts import COMPOSE_ENV, ManifestLoader, compose_binary, tool
from tools import deploy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SECRET_VALUES = {
    "webhook_token": "secret-value",
    "postgres_dsn": "postgresql://u:p@localhost:5432/db",
    "mastertrade_dsn": "postgresql://u:p@localhost:5432/db",
    "audit_dsn": "postgresql://u:p@localhost:5432/audit",
    "rabbitmq_password": "secret-value",
    "rabbitmq_api_url": "http://u:p@localhost:15672",
    "amqp_url": "amqp://u:p@localhost:5672/",
    "state_redis_url": "redis://localhost:6379/0",
}
OFFICIAL_IMAGES = (
    "postgres:", "redis:", "rabbitmq:", "prom/prometheus:", "prom/alertmanager:", "prom/node-exporter:",
    "grafana/grafana:",
)  # fmt: skip
# What a person opens: Grafana (its login) and the remediator's console (the token or a web-config user).
PUBLISHED = {"grafana", "remediator"}
SANDBOX_OVERLAY = DEPLOY / "compose/sandbox.yml"
OVERLAYS = ["base", "overlays/ha", "overlays/sandbox"]


def run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = None if env is None else {**os.environ, **env}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, cwd=cwd, env=environment)


def with_secrets(text: str, directory: Path) -> str:
    """Point /run/secrets at a directory holding a value for every secret file."""
    directory.mkdir(exist_ok=True)
    for name, value in SECRET_VALUES.items():
        (directory / name).write_text(value)
    return text.replace("/run/secrets", str(directory))


def config_maps() -> dict[str, dict[str, str]]:
    """The tradeops-config data of the base and of each overlay that patches it, by kustomization."""
    found = {}
    for name in OVERLAYS:
        (document,) = yaml.safe_load_all((KUBERNETES / name / "configmap.yaml").read_text())
        found[name] = document["data"]
    return found


def rendered(kustomization: str) -> list[dict[str, Any]]:
    """The manifests `kubectl kustomize` renders for a kustomization under deploy/kubernetes."""
    result = run([tool("kubectl"), "kustomize", str(KUBERNETES / kustomization)])
    assert result.returncode == 0, f"kubectl kustomize deploy/kubernetes/{kustomization}: {result.stderr}"
    return [d for d in yaml.load_all(result.stdout, Loader=ManifestLoader) if d]


def compose_config(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model as Compose v2 resolves it (variables, merged overlays, long port syntax)."""
    argv = [compose_binary()]
    for path in files:
        argv += ["-f", str(path)]
    result = run([*argv, "config", "--format", "json"], cwd=DEPLOY, env=COMPOSE_ENV if env is None else env)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def test_generated_deployment_files_are_in_sync_with_profiles_and_rules() -> None:
    for path, text in deploy.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run python -m tools.deploy"


def test_prometheus_rule_carries_every_alert_and_recording_rule_of_the_profile() -> None:
    rule = yaml.safe_load((KUBERNETES / "base/prometheusrule.yaml").read_text())
    shipped = set()
    for name in deploy.profile_rule_files():
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            shipped |= {r.get("alert") or r["record"] for r in group["rules"]}
    generated = {r.get("alert") or r["record"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert generated == shipped
    assert rule["kind"] == "PrometheusRule"


def generated_configs() -> list[tuple[str, str, str]]:
    """(where, service, text) of every generated exporter and remediator config."""
    configs = [
        ("compose", "exporter", (DEPLOY / "compose/exporter.yml").read_text()),
        ("compose", "remediator", (DEPLOY / "compose/remediator.yml").read_text()),
        ("compose sandbox", "remediator", (DEPLOY / "compose/sandbox/remediator.yml").read_text()),
    ]
    for name, data in config_maps().items():
        configs += [(name, file.removesuffix(".yml"), text) for file, text in data.items()]
    return configs


@pytest.mark.parametrize(("where", "name", "text"), generated_configs(), ids=lambda v: str(v)[:24])
def test_every_generated_config_passes_the_services_own_checks(
    where: str, name: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.yml"
    path.write_text(with_secrets(text, tmp_path / "secrets"))
    loader = load_exporter_config if name == "exporter" else load_remediator_config
    loader(path)  # a ConfigError here fails the test with located errors


def test_production_configs_name_the_platform_never_the_sandbox_nor_an_inline_secret() -> None:
    production = [(w, n, t) for w, n, t in generated_configs() if "sandbox" not in w]
    assert {w for w, _, _ in production} == {"compose", "base", "overlays/ha"}
    for where, name, text in production:
        assert "sandbox" not in text, f"{where} {name}.yml names the sandbox"
        assert "127.0.0.1" not in text, f"{where} {name}.yml names a local address"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", text), f"{where} {name}.yml has credentials inline"
    compose = yaml.safe_load((DEPLOY / "compose/exporter.yml").read_text())
    assert compose["probes"]["service_health"][0]["url"] == "http://mastertrade-market-data:8000/health"


def test_kubernetes_remediator_has_no_docker_socket_and_its_restart_rules_page_instead() -> None:
    for where, data in config_maps().items():
        config = yaml.safe_load(data["remediator.yml"])
        assert "docker_host" not in config["backends"], where
        restarts = {r["name"]: r for r in config["rules"] if r["name"].startswith("restart-")}
        assert restarts, where
        for rule in restarts.values():
            assert rule["action"] == "escalate", (where, rule["name"])
            assert "by hand" in rule["params"]["note"]
    for document in rendered("base"):
        if document["kind"] in {"Deployment", "StatefulSet"}:
            volumes = document["spec"]["template"]["spec"].get("volumes", [])
            assert not [v for v in volumes if "hostPath" in v], document["metadata"]["name"]


def test_production_pages_for_a_backup_and_the_demo_runs_the_sandboxs_own() -> None:
    production = yaml.safe_load((DEPLOY / "compose/remediator.yml").read_text())
    demo = yaml.safe_load((DEPLOY / "compose/sandbox/remediator.yml").read_text())
    (backup,) = [r for r in production["rules"] if r["name"] == "run-backup"]
    assert backup["action"] == "escalate"
    assert "backup_full.sh" in backup["params"]["note"]
    (sandbox_backup,) = [r for r in demo["rules"] if r["name"] == "run-backup"]
    assert sandbox_backup["action"] == "command"
    assert production["backends"]["docker_host"] == "unix:///var/run/docker.sock"


def test_a_profile_address_without_a_host_in_the_template_is_a_located_error() -> None:
    production = deploy.template()
    hosts = dict(production.compose.hosts)
    del hosts["127.0.0.1:8006"]
    target = deploy.Target(hosts=hosts, docker_host=None)
    with pytest.raises(ConfigError, match=r"hosts: no host for 127\.0\.0\.1:8006"):
        deploy.exporter_config(target, production)


def test_an_escalation_for_a_rule_the_profile_lacks_is_a_located_error() -> None:
    production = deploy.template()
    with pytest.raises(ConfigError, match=r"escalate\.no-such-rule: no rule of the profile has this name"):
        deploy.remediator_config(production.compose, production, escalate={"no-such-rule": "a note"})


def test_the_template_refuses_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "production.yml"
    path.write_text(deploy.TEMPLATE.read_text() + "hostz: {}\n")
    with pytest.raises(ConfigError, match="hostz"):
        load_config(deploy.Template, path)


# Kubernetes


def test_ha_overlay_runs_two_replicas_with_redis_state_postgres_audit_and_a_pdb() -> None:
    documents = rendered("overlays/ha")
    (statefulset,) = [d for d in documents if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in statefulset["spec"]  # nothing on a per-replica disk
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "tradeops-config"]
    config = yaml.safe_load(config_map["data"]["remediator.yml"])
    assert config["state"] == "redis"
    assert config["audit"] == "postgres"
    assert "replica" not in config  # each replica is its pod's stable name (the StatefulSet's hostname)
    secrets = {k for d in documents if d["kind"] == "Secret" for k in d.get("stringData", {})}
    for field in (config["state_redis"]["url_file"], config["audit_postgres"]["dsn_file"]):
        assert Path(field).name in secrets, field
    (pdb,) = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "exporter.yml" in config_map["data"]  # the patch replaced the remediator's file only


@pytest.mark.parametrize("kustomization", OVERLAYS)
def test_every_kustomization_renders_complete_non_root_workloads(kustomization: str) -> None:
    documents = rendered(kustomization)
    kinds = {d["kind"] for d in documents}
    expected = {"StatefulSet", "Deployment", "Service", "ConfigMap", "Secret", "ServiceMonitor", "PrometheusRule"}
    assert expected | {"AlertmanagerConfig"} <= kinds
    service_ports = {p["name"] for d in documents if d["kind"] == "Service" for p in d["spec"]["ports"]}
    for document in documents:
        assert document["metadata"]["name"]
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == deploy.NAMESPACE
        if document["kind"] in {"Deployment", "StatefulSet"}:
            pod = document["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                assert "readinessProbe" in container
                assert "livenessProbe" in container
        if document["kind"] == "ServiceMonitor":
            assert {e["port"] for e in document["spec"]["endpoints"]} <= service_ports
        if document["kind"] == "Service":
            assert document["spec"].get("type", "ClusterIP") == "ClusterIP", document["metadata"]["name"]


def test_every_dashboard_is_a_config_map_for_the_grafana_sidecar() -> None:
    maps = [d for d in rendered("base") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    shipped = {p.name: json.loads(p.read_text()) for p in (ROOT / "grafana_dashboards").glob("*.json")}
    assert shipped
    loaded = {name: json.loads(text) for config_map in maps for name, text in config_map["data"].items()}
    assert loaded == shipped
    for config_map in maps:
        assert config_map["kind"] == "ConfigMap"
        assert len(yaml.safe_dump(config_map)) < 256 * 1024, config_map["metadata"]["name"]  # kubectl apply's limit


def test_the_alertmanager_config_authenticates_to_the_remediator_with_the_token_secret() -> None:
    documents = rendered("base")
    (resource,) = [d for d in documents if d["kind"] == "AlertmanagerConfig"]
    assert resource["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    (receiver,) = [r for r in resource["spec"]["receivers"] if r["name"] == resource["spec"]["route"]["receiver"]]
    (webhook,) = receiver["webhookConfigs"]
    assert webhook["url"] == f"http://tradeops-remediator.{deploy.NAMESPACE}.svc:10102/webhook"
    credentials = webhook["httpConfig"]["authorization"]["credentials"]
    (secret,) = [d for d in documents if d["kind"] == "Secret" and d["metadata"]["name"] == credentials["name"]]
    assert set(secret["stringData"]) == {credentials["key"]}  # the token alone, no other secret beside it
    services = {d["metadata"]["name"] for d in documents if d["kind"] == "Service"}
    assert "tradeops-remediator" in services


def test_the_component_alertmanager_reads_its_config_and_only_the_token_secret() -> None:
    documents = [
        d for d in yaml.safe_load_all((KUBERNETES / "components/alertmanager/alertmanager.yaml").read_text()) if d
    ]
    (alertmanager,) = [d for d in documents if d["kind"] == "Alertmanager"]
    secrets = {d["metadata"]["name"] for d in documents if d["kind"] == "Secret"}
    assert alertmanager["spec"]["configSecret"] in secrets
    assert alertmanager["spec"]["secrets"] == [deploy.WEBHOOK_SECRET]


# Compose


def published_ports(model: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: service.get("ports", []) for name, service in model["services"].items() if service.get("ports")}


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "compose/sandbox.yml"]])
def test_compose_publishes_only_grafana_and_the_console_and_only_on_loopback(files: list[str]) -> None:
    model = compose_config(*(DEPLOY / f for f in files))
    ports = published_ports(model)
    assert set(ports) == PUBLISHED, f"published: {sorted(ports)}"
    for name, entries in ports.items():
        for entry in entries:
            assert entry.get("host_ip") == "127.0.0.1", f"{name} publishes {entry} beyond loopback"
    assert {p["target"] for p in ports["remediator"]} == {10102}


def test_no_compose_service_runs_prometheus_lifecycle_or_alertmanager_without_the_web_config() -> None:
    model = compose_config(DEPLOY / "docker-compose.yml")
    for name, service in model["services"].items():
        command = " ".join(service.get("command") or [])
        assert "--web.enable-lifecycle" not in command, name
        if name in {"exporter", "remediator", "prometheus", "alertmanager"}:
            assert "--web.config.file" in command, name


def test_the_compose_web_config_is_accepted_by_promtool_and_by_tradeops() -> None:
    path = DEPLOY / "compose/web-config.yml"
    result = run([require_binary("promtool"), "check", "web-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    load_web_config(path)


def test_the_remediator_reaches_the_docker_socket_through_its_group_and_says_which() -> None:
    model = compose_config(DEPLOY / "docker-compose.yml", env={"DOCKER_GID": "4242"})
    remediator = model["services"]["remediator"]
    assert [v for v in remediator["volumes"] if v["target"] == "/var/run/docker.sock"]
    assert remediator["group_add"] == ["4242"]
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_GID"}
    result = subprocess.run(
        [compose_binary(), "-f", "docker-compose.yml", "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=DEPLOY,
        env=env,
    )
    assert result.returncode != 0
    assert "DOCKER_GID" in result.stderr
    assert "stat -c %g /var/run/docker.sock" in result.stderr


def test_the_demo_overlay_answers_under_the_platforms_names_on_its_own_network() -> None:
    model = compose_config(DEPLOY / "docker-compose.yml", SANDBOX_OVERLAY)
    production = deploy.template().compose.hosts.values()
    platform_names = {host.split(":")[0] for host in production} - {"alertmanager", "prometheus"}
    aliases = {
        a for s in model["services"].values() for a in (s.get("networks", {}).get("platform") or {}).get("aliases", [])
    }
    assert platform_names <= aliases, platform_names - aliases
    assert model["networks"]["platform"].get("external") in (None, False)
    mounts = {v["target"]: v["source"] for v in model["services"]["remediator"]["volumes"]}
    assert mounts["/etc/tradeops/remediator.yml"].endswith("deploy/compose/sandbox/remediator.yml")


def test_compose_file_uses_official_images_health_checks_and_file_secrets() -> None:
    model = compose_config(DEPLOY / "docker-compose.yml", SANDBOX_OVERLAY)
    services = model["services"]
    expected = {"postgres", "redis", "rabbitmq", "prometheus", "alertmanager", "grafana", "node-exporter"}
    assert expected | {"exporter", "remediator", "sandbox"} <= set(services)
    for name, service in services.items():
        if name in expected:
            assert service["image"].startswith(OFFICIAL_IMAGES), name
            assert "healthcheck" in service, name
        else:
            assert service["image"] == "tradeops:latest", name  # its health check is the image's HEALTHCHECK
    for secret in model["secrets"].values():
        assert set(secret) <= {"file", "name"}, secret
    for service in services.values():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind" and volume["source"].startswith(str(ROOT)):
                assert Path(volume["source"]).exists(), volume["source"]
    for path in (DEPLOY / "docker-compose.yml", SANDBOX_OVERLAY):
        assert "PASSWORD=" not in path.read_text(), "passwords come from secret files"


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


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), source


def test_the_kubernetes_demo_exporter_reads_the_backups_the_sandbox_writes() -> None:
    manifests = rendered("overlays/sandbox")
    workloads = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    volumes = {}
    for name in ("tradeops-exporter", "sandbox"):
        spec = workloads[name]["spec"]["template"]["spec"]
        [volumes[name]] = [v for v in spec["volumes"] if v["name"] == "backups"]
    claim = volumes["sandbox"].get("persistentVolumeClaim", {}).get("claimName")
    assert claim is not None, "the sandbox writes its backups to a volume of its own pod only"
    assert volumes["tradeops-exporter"] == volumes["sandbox"] | {
        "persistentVolumeClaim": {"claimName": claim, "readOnly": True}
    }
    [pvc] = [m for m in manifests if m["kind"] == "PersistentVolumeClaim" and m["metadata"]["name"] == claim]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # One node mounts a ReadWriteOnce volume: the sandbox is placed beside the exporter.
    affinity = workloads["sandbox"]["spec"]["template"]["spec"]["affinity"]["podAffinity"]
    [term] = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "tradeops-exporter"}
    assert term["topologyKey"] == "kubernetes.io/hostname"
