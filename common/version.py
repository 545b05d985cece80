"""The build's identity: the version from the installed distribution's metadata, the revision it was built from."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "tradeops"
REVISION_VARIABLE = "TRADEOPS_REVISION"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class BuildInfo:
    """What `--version` prints and the `_build_info` gauges carry as labels."""

    version: str
    revision: str
    python_version: str

    def labels(self) -> dict[str, str]:
        """Return the build_info labels: version, revision, python_version."""
        return {"version": self.version, "revision": self.revision, "python_version": self.python_version}


def package_version() -> str:
    """Return the installed tradeops version (pyproject's, through importlib.metadata), or "unknown"."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return UNKNOWN


def git_revision(checkout: Path) -> str:
    """Return `git rev-parse HEAD` of the checkout at this path, or "unknown" when it is not one."""
    if not (checkout / ".git").exists():  # installed (site-packages, an image): no checkout to ask
        return UNKNOWN
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a checkout has it
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    text = result.stdout.strip()
    if result.returncode != 0 or not text or not all(ch in "0123456789abcdef" for ch in text):
        return UNKNOWN
    return text


_cached_git_revision = functools.cache(git_revision)  # a process's own checkout is asked once


def revision(environ: dict[str, str] | None = None) -> str:
    """Return the revision: $TRADEOPS_REVISION (set at image build), else `git rev-parse HEAD` of the checkout
    this code runs from, else "unknown"."""
    env = os.environ if environ is None else environ
    value = env.get(REVISION_VARIABLE, "").strip()
    if value:
        return value
    return _cached_git_revision(Path(__file__).resolve().parent.parent)


def build_info(environ: dict[str, str] | None = None) -> BuildInfo:
    """Return this process's build info."""
    return BuildInfo(package_version(), revision(environ), platform.python_version())


def version_text(program: str, environ: dict[str, str] | None = None) -> str:
    """Return the `--version` text, shaped like Prometheus': name, version, revision, then the runtime."""
    info = build_info(environ)
    return (
        f"{program}, version {info.version} (revision: {info.revision})\n"
        f"  python version:   {info.python_version}\n"
        f"  platform:         {platform.system().lower()}/{platform.machine()}"
    )
