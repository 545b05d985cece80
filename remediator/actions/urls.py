"""URL normalisation for the `http_request` allowlist (RFC 3986, section 6): the URL is put in one canonical form
before the prefix check, the check is made on whole path segments, and the canonical form is what is sent, so
the URL checked is the URL called."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
HOST = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*\.?|\[[0-9a-f:.]+\]")
# Encoded bytes a server may decode into path structure after the check: '/' and '\' (an encoded `.` or `..`
# segment is refused separately; a literal one is resolved).
STRUCTURAL = {"2F", "5C"}
HOST_PORT = re.compile(r"^[A-Za-z0-9._-]{1,253}(:[0-9]{1,5})?$")


class UrlError(ValueError):
    """A URL that cannot be put in one canonical form (it could be read two ways)."""


@dataclass(frozen=True)
class CanonicalUrl:
    """An absolute http(s) URL in canonical form: lower-case scheme and host, no default port, no userinfo,
    no dot segments, unreserved characters decoded and other escapes upper-cased."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"

    def within(self, prefix: CanonicalUrl) -> bool:
        """Return whether this URL is the prefix or below it on a segment boundary (`/platform/` and
        `/platform` allow `/platform/x`, never `/platform-evil`)."""
        if (self.scheme, self.host, self.port) != (prefix.scheme, prefix.host, prefix.port):
            return False
        if prefix.query:  # a prefix with a query allows that exact path and query start only
            return self.path == prefix.path and (self.query + "&").startswith(prefix.query + "&")
        if self.path == prefix.path:
            return True
        base = prefix.path if prefix.path.endswith("/") else prefix.path + "/"
        return self.path.startswith(base)


def _normalise_escapes(text: str, what: str, *, path: bool) -> str:
    def replace(found: re.Match[str]) -> str:
        code = found.group(1).upper()
        if path and code in STRUCTURAL:
            raise UrlError(f"the {what} has an encoded '/' or '\\' (%{code}), which a server may read as a separator")
        char = chr(int(code, 16))
        return char if char in UNRESERVED else f"%{code}"

    if "%" in PERCENT.sub("", text):
        raise UrlError(f"the {what} has a '%' that is not a percent-escape")
    return PERCENT.sub(replace, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 on a path of whole segments: `.` dropped, `..` removes the segment before it."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def canonical_url(url: str) -> CanonicalUrl:
    """Put an absolute http(s) URL in canonical form, raising UrlError for anything that could be read two ways:
    userinfo, backslashes, whitespace or control characters, encoded '/' or '\\' in the path, a fragment, a
    malformed host or port."""
    if any(char <= " " or char == "\x7f" for char in url) or "\\" in url:
        raise UrlError("the URL has whitespace, a control character or a backslash")
    if not url.isascii():
        raise UrlError("the URL has non-ASCII characters (percent-encode them)")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise UrlError("the URL is not an absolute http(s) URL")
    if "@" in parts.netloc:
        raise UrlError("the URL has userinfo (user@host), which hides the real host")
    if parts.fragment or url.endswith("#"):
        raise UrlError("the URL has a fragment")
    netloc = parts.netloc.lower()
    host, _, port_text = netloc.rpartition(":") if not netloc.endswith("]") and ":" in netloc else (netloc, "", "")
    if not HOST.fullmatch(host):
        raise UrlError(f"the URL's host {host!r} is not a plain host name or IP address")
    port: int | None = None
    if port_text or netloc.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UrlError(f"the URL's port {port_text!r} is not a port number")
        port = int(port_text)
    if port == DEFAULT_PORTS[scheme]:
        port = None
    raw_path = parts.path or "/"
    for segment in raw_path.split("/"):
        if "%" in segment and PERCENT.sub(lambda found: chr(int(found.group(1), 16)), segment) in {".", ".."}:
            raise UrlError(f"the URL's path has an encoded dot segment ({segment!r})")
    path = _normalise_escapes(raw_path, "path", path=True)
    path = _remove_dot_segments(path)
    query = _normalise_escapes(parts.query, "query", path=False)
    return CanonicalUrl(scheme, host.rstrip("."), port, path, query)


def allowed_url_prefix(prefix: str) -> CanonicalUrl:
    """An `allowed_url_prefixes` entry in canonical form, raising UrlError that names it when it has none."""
    try:
        return canonical_url(prefix)
    except UrlError as error:
        raise UrlError(f"allowed URL prefix {prefix!r}: {error}") from None


def fill_url_template(template: str, bound: Mapping[str, str]) -> str:
    """Fill a URL template's placeholders: in the host part a value must be a plain host[:port] (the allowlisted
    instance of a service, say) and goes in as it is (UrlError otherwise); anywhere else it is percent-quoted as
    one path segment. The result must still be normalised and checked against the allowed prefixes."""
    scheme, sep, rest = template.partition("://")
    authority, slash, path = rest.partition("/") if sep else ("", "", template)
    for key, value in bound.items():
        placeholder = "{" + key + "}"
        if placeholder in authority:
            if not HOST_PORT.match(value):
                raise UrlError(f"label value {value!r} for {placeholder} is not a host[:port]")
            authority = authority.replace(placeholder, value)
        path = path.replace(placeholder, quote(value, safe=""))
    return f"{scheme}{sep}{authority}{slash}{path}" if sep else path
