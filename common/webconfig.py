"""The `--web.config.file` both services take, in Prometheus exporter-toolkit's shape: TLS (with client
certificates), basic auth with bcrypt hashes and response headers; the TLS context and the aiohttp middleware
built from it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
from aiohttp import web
from pydantic import Field, field_validator, model_validator

from common.config import ConfigError, ConfigErrorDetail, StrictModel, load_config

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit's (Go's) names of the TLS 1.2 AEAD suites and OpenSSL's; TLS 1.3 suites are not configurable,
# in Go as here. Go's other (CBC, RC4, 3DES) suites are refused with a clear error.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
ClientAuthType = Literal[
    "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
]
# Python's ssl verifies every client certificate it asks for: "ask but do not verify" cannot be served.
UNVERIFIED_CLIENT_AUTH = {"RequestClientCert", "RequireAnyClientCert"}
# exporter-toolkit keys tradeops does not serve; refused with a message rather than "extra inputs".
UNSUPPORTED_TLS_KEYS = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "client_ca": "an inline client CA is not supported; use client_ca_file",
    "client_allowed_sans": "client_allowed_sans is not supported by tradeops",
    "curve_preferences": "curve_preferences is not supported by tradeops (OpenSSL's defaults are used)",
}
# exporter-toolkit allows these response headers only, and these values for two of them.
ALLOWED_HEADERS = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": {"nosniff"},
    "X-Frame-Options": {"deny", "sameorigin"},
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
# Compared against when the user is unknown, so that an unknown user costs one bcrypt too (no user enumeration
# by timing). exporter-toolkit's: the bcrypt hash of "fakepassword" at cost 10.
FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
OPEN_PATHS = frozenset({"/-/healthy"})  # liveness stays open, for orchestrators' probes


class TLSServerConfig(StrictModel):
    """exporter-toolkit's `tls_server_config`: no cert_file and no key_file means plain HTTP."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    @model_validator(mode="before")
    @classmethod
    def _unsupported_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, why in UNSUPPORTED_TLS_KEYS.items():
                if key in data:
                    raise ValueError(f"{key}: {why}")
        return data

    @field_validator("client_auth_type")
    @classmethod
    def _verifiable(cls, value: str) -> str:
        if value in UNVERIFIED_CLIENT_AUTH:
            raise ValueError(
                f"{value} (ask for a client certificate without verifying it) is not supported: use "
                "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
            )
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _known_suites(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in CIPHER_SUITES]
        if unknown:
            raise ValueError(f"unsupported cipher suite(s) {', '.join(unknown)}; supported: {', '.join(CIPHER_SUITES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        if self.cert_file is not None and self.key_file is None:
            raise ValueError("missing key_file")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("missing cert_file")
        if self.client_ca_file is not None and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set without a client_auth_type (as exporter-toolkit refuses)")
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.client_auth_type != "NoClientCert" and self.cert_file is None:
            raise ValueError("client_auth_type needs TLS: set cert_file and key_file")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        return self

    @property
    def enabled(self) -> bool:
        """Whether HTTPS is served (a certificate and key are given)."""
        return self.cert_file is not None


class HTTPServerConfig(StrictModel):
    """exporter-toolkit's `http_server_config`: response headers (http2 is accepted; aiohttp serves HTTP/1.1)."""

    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed(cls, value: dict[str, str]) -> dict[str, str]:
        for name, content in value.items():
            if name not in ALLOWED_HEADERS:
                raise ValueError(f"header {name!r} is not allowed; allowed: {', '.join(ALLOWED_HEADERS)}")
            allowed = ALLOWED_HEADERS[name]
            if allowed is not None and content.lower() not in allowed:
                raise ValueError(f"header {name}: {content!r} is not one of {', '.join(sorted(allowed))}")
        return value


class WebConfig(StrictModel):
    """The web configuration file: TLS, basic auth users (user -> bcrypt hash) and response headers."""

    tls_server_config: TLSServerConfig = TLSServerConfig()
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[Annotated[str, Field(min_length=1)], str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(user for user, hashed in value.items() if not BCRYPT_HASH.match(hashed))
        if bad:
            raise ValueError(f"not a bcrypt hash ($2y$10$… from htpasswd -nBC 10 or bcrypt) for: {', '.join(bad)}")
        colon = sorted(user for user in value if ":" in user)
        if colon:
            raise ValueError(f"a basic-auth user name cannot contain ':': {', '.join(colon)}")
        return value


def load_web_config(path: str | Path) -> WebConfig:
    """Load a web config file; relative file names are relative to its directory (as exporter-toolkit's); the
    certificate, key and client CA must load. Every failure is a located ConfigError."""
    source = str(path)
    config = load_config(WebConfig, path)
    tls = config.tls_server_config
    base = Path(path).parent
    resolved = {
        name: base / value if not value.is_absolute() else value
        for name in ("cert_file", "key_file", "client_ca_file")
        if (value := getattr(tls, name)) is not None
    }
    details = [
        ConfigErrorDetail(f"tls_server_config.{name}", f"cannot read {file}")
        for name, file in resolved.items()
        if not file.is_file()
    ]
    if details:
        raise ConfigError(source, details)
    config = config.model_copy(update={"tls_server_config": tls.model_copy(update=resolved)})
    try:
        server_ssl_context(config)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(source, [ConfigErrorDetail("tls_server_config", f"cannot load: {error}")]) from None
    return config


def server_ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    """Return the server's TLS context (versions, suites, certificate, client CA and verification), or None
    for plain HTTP; raises ssl.SSLError or OSError on a file that does not load."""
    tls = config.tls_server_config
    if tls.cert_file is None or tls.key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.cipher_suites:
        context.set_ciphers(":".join(CIPHER_SUITES[name] for name in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=str(tls.client_ca_file))
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context


def load_web_config_flag(path: str | None) -> WebConfig | None:
    """Load the --web.config.file when one is given (None otherwise); a ConfigError propagates."""
    return None if not path else load_web_config(path)


@dataclass
class BasicAuth:
    """Checks basic-auth credentials against bcrypt hashes in constant time per user. A check's outcome is
    cached for `ttl` seconds per (user, hash, password) digest, so a scrape every few seconds pays one bcrypt
    per ttl, not one per request; bcrypt runs in a thread, one at a time (as exporter-toolkit's)."""

    users: Mapping[str, str]
    ttl: float = 60.0
    max_entries: int = 1024
    clock: Callable[[], float] = time.monotonic
    _cache: dict[bytes, tuple[bool, float]] = field(default_factory=dict, init=False, repr=False)
    _bcrypt: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def check(self, user: str, password: str) -> bool:
        """Whether the user exists and the password matches its hash."""
        hashed = self.users.get(user)
        known = hashed is not None
        hash_bytes = hashed.encode() if hashed is not None else FAKE_HASH
        key = hashlib.sha256(b"\0".join((user.encode(), hash_bytes, password.encode()))).digest()
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._bcrypt:
            matched = await asyncio.to_thread(_checkpw, password.encode(), hash_bytes)
        ok = matched and known
        self._remember(key, ok, now)
        return ok

    def _remember(self, key: bytes, ok: bool, now: float) -> None:
        if len(self._cache) >= self.max_entries:
            for stale in [k for k, (_, until) in self._cache.items() if until <= now]:
                del self._cache[stale]
            while len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (ok, now + self.ttl)


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt will not read never matches (load-time validation should prevent it)
        return False


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """Return (user, password) from an `Authorization: Basic …` header, or None when it is not one."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "\0invalid")  # a malformed Basic header is a failed login, never "no credentials"
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else ("", "\0invalid")


WEB_USER = web.RequestKey("tradeops.web_user", str)  # the basic-auth user the middleware authenticated


def web_user(request: web.Request) -> str | None:
    """The basic-auth user authenticated for this request by the web-config middleware, if any."""
    user = request.get(WEB_USER)
    return user if isinstance(user, str) else None


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": "missing or invalid basic-auth credentials"}, status=401, headers={"WWW-Authenticate": "Basic"}
    )


def web_config_middlewares(config: WebConfig | None, *, required: bool) -> list[Any]:
    """Return the aiohttp middlewares the web config asks for: response headers, and with basic_auth_users a
    check of Basic credentials. required=True (the exporter): every path but /-/healthy needs a valid user,
    else 401. required=False (the remediator): a valid user is marked on the request (see web_user) for the
    handlers' own checks, wrong Basic credentials are 401, and other requests go on to those checks."""
    if config is None:
        return []
    middlewares: list[Any] = []
    headers = dict(config.http_server_config.headers)
    if headers:

        @web.middleware
        async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                error.headers.update(headers)
                raise
            response.headers.update(headers)
            return response

        middlewares.append(add_headers)
    if config.basic_auth_users:
        auth = BasicAuth(config.basic_auth_users)

        @web.middleware
        async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in OPEN_PATHS:
                return await handler(request)
            credentials = basic_credentials(request.headers.get("Authorization"))
            if credentials is None:
                if required:
                    return _unauthorized()
                return await handler(request)
            user, password = credentials
            if not await auth.check(user, password):
                return _unauthorized()
            request[WEB_USER] = user
            return await handler(request)

        middlewares.append(basic_auth)
    return middlewares
