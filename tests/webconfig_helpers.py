"""Throwaway TLS material and web config files for tests, made with Debian's openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from tests.prereqs import require_binary


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all signed by the CA."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> Pki:
    """Create a CA and the server's and a client's certificates (EC P-256, one day) under directory."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "1", "-subj", "/CN=CA")
    pairs = {}
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
        ext.write_text(extension + "\n")
        _run(openssl, "req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        _run(
            openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext),
        )  # fmt: skip
        pairs[name] = (cert, key)
    return Pki(ca_cert, *pairs["server"], *pairs["client"])


def bcrypt_hash(password: str, rounds: int = 4) -> str:
    """A bcrypt hash of the password (cost 4 by default: tests need no strength)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
