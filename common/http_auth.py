"""Credentials an outgoing HTTP request carries (exporter HTTP probes, the remediator's http_request action):
bearer or basic, the secret always from a file, read at each request as Prometheus reads `credentials_file`."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from common.config import StrictModel, read_secret_file


class HttpAuthError(Exception):
    """A credentials file could not be read; the message names the file, never its content."""


class HttpAuth(StrictModel):
    """`{bearer_token_file: PATH}` or `{username: NAME, password_file: PATH}`; the config holds paths only."""

    bearer_token_file: Path | None = None
    username: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[^:\r\n]+$")
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> Self:
        basic = self.username is not None or self.password_file is not None
        if (self.bearer_token_file is not None) == basic:
            raise ValueError("give bearer_token_file, or username with password_file (one scheme)")
        if basic and (self.username is None or self.password_file is None):
            raise ValueError("basic auth needs both username and password_file")
        for path in (self.bearer_token_file, self.password_file):
            if path is not None and not path.is_absolute():
                raise ValueError(f"{path}: a credentials file path must be absolute")
        return self

    def headers(self) -> dict[str, str]:
        """The Authorization header, with the secret read from its file now; HttpAuthError when unreadable."""
        try:
            if self.bearer_token_file is not None:
                return {"Authorization": f"Bearer {read_secret_file(self.bearer_token_file).strip()}"}
            assert self.password_file is not None
            assert self.username is not None
            password = read_secret_file(self.password_file)
        except ValueError as error:  # read_secret_file's message names the path and the reason only
            raise HttpAuthError(str(error)) from None
        pair = base64.b64encode(f"{self.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
