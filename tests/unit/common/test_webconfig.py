"""The web config file (exporter-toolkit's shape): located errors, the TLS context, and basic auth's checks."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from common.config import ConfigError
from common.webconfig import BasicAuth, basic_credentials, load_web_config, server_ssl_context
from tests.webconfig_helpers import bcrypt_hash, make_pki


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def errors(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    return caught.value.render()


def test_an_empty_web_config_is_plain_http_without_auth(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert server_ssl_context(config) is None
    assert config.basic_auth_users == {}


def test_an_unknown_key_is_a_located_error(tmp_path: Path) -> None:
    text = errors(write(tmp_path, "tls_server_config:\n  cert_flie: x.crt\n"))
    assert "web.yml: tls_server_config.cert_flie: Extra inputs are not permitted" in text


def test_a_bad_bcrypt_hash_is_a_located_error_naming_the_user(tmp_path: Path) -> None:
    text = errors(write(tmp_path, "basic_auth_users:\n  alice: plaintext\n"))
    assert "basic_auth_users" in text
    assert "alice" in text
    assert "bcrypt" in text


def test_a_missing_certificate_file_is_a_located_error(tmp_path: Path) -> None:
    text = errors(write(tmp_path, "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n"))
    assert "tls_server_config.cert_file: cannot read" in text
    assert "tls_server_config.key_file: cannot read" in text


def test_a_key_without_its_certificate_is_an_error(tmp_path: Path) -> None:
    assert "missing cert_file" in errors(write(tmp_path, "tls_server_config:\n  key_file: server.key\n"))


def test_a_client_ca_without_a_client_auth_type_is_an_error_as_in_exporter_toolkit(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    text = errors(
        write(
            tmp_path,
            f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
            f"  client_ca_file: {pki.ca_cert}\n",
        )
    )
    assert "client_ca_file is set without a client_auth_type" in text


def test_client_auth_that_asks_without_verifying_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    text = errors(write(tmp_path, "tls_server_config:\n  client_auth_type: RequireAnyClientCert\n"))
    assert "tls_server_config.client_auth_type" in text
    assert "RequireAndVerifyClientCert" in text


def test_an_unsupported_cipher_suite_and_an_inline_certificate_are_refused(tmp_path: Path) -> None:
    assert "unsupported cipher suite" in errors(
        write(tmp_path, "tls_server_config:\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n")
    )
    assert "use cert_file" in errors(write(tmp_path, "tls_server_config:\n  cert: '-----BEGIN'\n"))


def test_a_header_exporter_toolkit_does_not_allow_is_refused(tmp_path: Path) -> None:
    text = errors(write(tmp_path, "http_server_config:\n  headers:\n    Server: tradeops\n"))
    assert "http_server_config.headers" in text


def test_a_certificate_that_does_not_load_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "bad.crt").write_text("not a certificate\n")
    (tmp_path / "bad.key").write_text("not a key\n")
    text = errors(write(tmp_path, "tls_server_config:\n  cert_file: bad.crt\n  key_file: bad.key\n"))
    assert "web.yml: tls_server_config: cannot load" in text


def test_relative_files_are_relative_to_the_web_config_and_build_a_verifying_context(tmp_path: Path) -> None:
    make_pki(tmp_path / "pki")
    config = load_web_config(
        write(
            tmp_path,
            "tls_server_config:\n  cert_file: pki/server.crt\n  key_file: pki/server.key\n"
            "  client_ca_file: pki/ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n",
        )
    )
    context = server_ssl_context(config)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


async def test_basic_auth_accepts_the_right_password_and_refuses_a_wrong_one_or_an_unknown_user() -> None:
    auth = BasicAuth({"alice": bcrypt_hash("s3cret")})
    assert await auth.check("alice", "s3cret")
    assert not await auth.check("alice", "wrong")
    assert not await auth.check("mallory", "s3cret")


async def test_a_cached_check_expires_after_its_ttl() -> None:
    now = [0.0]
    users = {"alice": bcrypt_hash("s3cret")}
    auth = BasicAuth(users, ttl=10, clock=lambda: now[0])
    assert await auth.check("alice", "s3cret")
    assert await auth.check("alice", "s3cret")  # cached
    now[0] = 11.0
    assert await auth.check("alice", "s3cret")  # checked again
    assert len(auth._cache) == 1


async def test_the_cache_stays_within_its_bound() -> None:
    auth = BasicAuth({"alice": bcrypt_hash("s3cret")}, max_entries=3)
    for attempt in range(6):
        assert not await auth.check("alice", f"guess{attempt}")
    assert len(auth._cache) <= 3


def test_a_malformed_basic_header_is_a_failed_login_not_missing_credentials() -> None:
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer abc") is None
    assert basic_credentials("Basic !!!") == ("", "\0invalid")
    assert basic_credentials("Basic YWxpY2U6czNjcmV0") == ("alice", "s3cret")
