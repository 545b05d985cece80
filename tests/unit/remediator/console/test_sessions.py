"""The console's sessions: random ids that end when they expire, when they are ended, or when the webhook token
rotates; a bounded table; and login CSRF tokens that only this process can sign and that expire."""

from __future__ import annotations

import types

import pytest

from remediator.console import sessions as sessions_module
from remediator.console.sessions import LOGIN_SECONDS, MAX_SESSIONS, Sessions


class Clock:
    """Stands in for the module's `time`: a clock the test moves."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(sessions_module, "time", types.SimpleNamespace(time=fake.time))
    return fake


def test_a_session_is_found_with_the_token_it_was_made_under() -> None:
    table = Sessions()
    session = table.create("token-1")
    assert table.get(session.sid, "token-1") == session
    assert session.sid != session.csrf
    assert len(session.sid) >= 40


def test_session_ids_and_csrf_tokens_are_never_reused() -> None:
    table = Sessions()
    made = [table.create("t") for _ in range(200)]
    assert len({s.sid for s in made} | {s.csrf for s in made}) == 400


@pytest.mark.parametrize("sid", [None, "", "guess", "x" * 43])
def test_an_absent_or_unknown_session_id_finds_nothing(sid: str | None) -> None:
    table = Sessions()
    table.create("t")
    assert table.get(sid, "t") is None


def test_a_rotated_token_ends_the_session_for_good() -> None:
    table = Sessions()
    session = table.create("old-token")
    assert table.get(session.sid, "new-token") is None
    assert table.get(session.sid, "old-token") is None  # dropped, not just hidden


def test_a_session_made_without_a_token_does_not_survive_one_being_configured() -> None:
    table = Sessions()
    session = table.create(None)
    assert table.get(session.sid, None) == session
    assert table.get(session.sid, "now-a-token") is None


def test_an_ended_session_is_gone_and_ending_it_twice_is_harmless() -> None:
    table = Sessions()
    session = table.create("t")
    table.end(session.sid)
    table.end(session.sid)
    table.end("never-existed")
    assert table.get(session.sid, "t") is None


def test_a_session_expires_after_its_lifetime(clock: Clock) -> None:
    table = Sessions(seconds=60)
    session = table.create("t")
    clock.now += 59
    assert table.get(session.sid, "t") == session
    clock.now += 1
    assert table.get(session.sid, "t") is None
    clock.now -= 30
    assert table.get(session.sid, "t") is None  # dropped once met expired


def test_the_table_is_bounded_dropping_expired_sessions_first(clock: Clock) -> None:
    table = Sessions(seconds=100)
    early = table.create("t")
    clock.now += 50
    rest = [table.create("t") for _ in range(MAX_SESSIONS - 1)]
    clock.now += 60  # the first one has expired, the others have not
    newest = table.create("t")
    assert table.get(early.sid, "t") is None
    assert all(table.get(s.sid, "t") == s for s in rest)
    assert table.get(newest.sid, "t") == newest


def test_a_full_table_of_live_sessions_drops_the_one_that_ends_soonest(
    clock: Clock,
) -> None:
    table = Sessions(seconds=1000)
    made = []
    for _ in range(MAX_SESSIONS):
        made.append(table.create("t"))
        clock.now += 1
    newest = table.create("t")
    assert table.get(made[0].sid, "t") is None
    assert table.get(made[1].sid, "t") == made[1]
    assert table.get(newest.sid, "t") == newest


def test_a_login_csrf_token_this_process_signed_is_valid() -> None:
    table = Sessions()
    assert table.login_csrf_valid(table.login_csrf())


def test_a_login_csrf_token_expires(clock: Clock) -> None:
    table = Sessions()
    value = table.login_csrf()
    clock.now += LOGIN_SECONDS
    assert table.login_csrf_valid(value)
    clock.now += 1
    assert not table.login_csrf_valid(value)


def test_another_processes_login_csrf_token_is_refused() -> None:
    assert not Sessions().login_csrf_valid(Sessions().login_csrf())


def test_a_tampered_login_csrf_token_is_refused() -> None:
    table = Sessions()
    nonce, expires, mac = table.login_csrf().split(".")
    forged = [
        f"{nonce}.{int(expires) + 86_400}.{mac}",  # a later expiry
        f"other.{expires}.{mac}",
        f"{nonce}.{expires}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",
        f"{nonce}.{expires}.",
        f"{nonce}.{expires}",
    ]
    assert not any(table.login_csrf_valid(value) for value in forged)


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        "a.b.c",
        "a.-1.c",
        "a. 99999999999.c",
        "a." + "\uff19" * 10 + ".c",  # full-width digits
        "x" * 10_000,
    ],
)
def test_a_malformed_login_csrf_token_is_refused_without_error(value: str) -> None:
    assert not Sessions().login_csrf_valid(value)
