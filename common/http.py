"""The HTTP client session a service shares among the parts that make outgoing calls."""

from __future__ import annotations

import aiohttp


class SharedSession:
    """One aiohttp ClientSession per process, handed to every caller that needs one; opened on first use inside
    the event loop, closed once by the resource's owner (the app's cleanup context). Callers pass their own
    timeouts and headers per request."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def get(self) -> aiohttp.ClientSession:
        """The session, opened now if it is not yet; RuntimeError once closed."""
        if self._closed:
            raise RuntimeError("the shared HTTP session is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": self.user_agent})
        return self._session

    async def close(self) -> None:
        """Close the session (idempotent); later calls to get() fail."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
