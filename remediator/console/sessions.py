"""The console's sessions: a server-side table of random session ids, each with its expiry and CSRF token, bound to
the webhook token in force when it was made (a rotated token ends every session) and naming who logged in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
LOGIN_SECONDS = 600


def _digest(token: str | None) -> str:
    return hashlib.sha256((token or "").encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """One logged-in browser: its CSRF token, when it ends, which token was in force when it logged in, and who it
    is (`token` for the webhook token, else the web config's basic-auth user), as approvals record it."""

    sid: str
    csrf: str
    expires_at: float
    token_digest: str
    user: str = "token"


@dataclass
class Sessions:
    """The sessions of this process (a restart logs everyone out); bounded, expired ones dropped as they are met."""

    seconds: float = SESSION_SECONDS
    _table: dict[str, Session] = field(default_factory=dict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def create(self, token: str | None, user: str = "token") -> Session:
        """Start a session for a browser that gave the token in force, or a web-config user's password."""
        current = time.time()
        if len(self._table) >= MAX_SESSIONS:
            self._table = {sid: s for sid, s in self._table.items() if s.expires_at > current}
            while len(self._table) >= MAX_SESSIONS:
                self._table.pop(min(self._table, key=lambda sid: self._table[sid].expires_at))
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), current + self.seconds, _digest(token), user
        )
        self._table[session.sid] = session
        return session

    def get(self, sid: str | None, token: str | None) -> Session | None:
        """The live session with this id, made under the token in force; None otherwise."""
        if not sid:
            return None
        session = self._table.get(sid)
        if session is None:
            return None
        if session.expires_at <= time.time() or not hmac.compare_digest(session.token_digest, _digest(token)):
            self._table.pop(sid, None)
            return None
        return session

    def end(self, sid: str) -> None:
        """Log a session out."""
        self._table.pop(sid, None)

    def login_csrf(self) -> str:
        """A signed, expiring CSRF token for the login form (before there is a session)."""
        expires = str(int(time.time()) + LOGIN_SECONDS)
        nonce = secrets.token_urlsafe(16)
        mac = hmac.new(self._key, f"login:{nonce}:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{nonce}.{expires}.{mac}"

    def login_csrf_valid(self, value: str) -> bool:
        """Whether the login form's token is one this process signed and it has not expired."""
        nonce, _, rest = value.partition(".")
        expires, _, mac = rest.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        wanted = hmac.new(self._key, f"login:{nonce}:{expires}".encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(wanted, mac)
