"""Loading YAML configuration into frozen pydantic models, with errors that say where they are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every configuration model: unknown keys are errors and loaded values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True)
class ConfigErrorDetail:
    """One problem in a configuration file: where it is and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(Exception):
    """A configuration file could not be read or is invalid; carries every located problem."""

    def __init__(self, source: str, details: Sequence[ConfigErrorDetail]) -> None:
        self.source = source
        self.details = tuple(details)
        super().__init__(self.render())

    def render(self) -> str:
        """Return one line per problem, each prefixed by the file it came from."""
        return "\n".join(f"{self.source}: {detail}" for detail in self.details)


def _location(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)


def validation_details(error: ValidationError) -> list[ConfigErrorDetail]:
    """Turn a pydantic ValidationError into located, readable problems."""
    details = []
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if isinstance(part, int | str)]
        details.append(ConfigErrorDetail(_location(loc), item["msg"]))
    return details


def parse_config(model: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate already-parsed data against the model, raising ConfigError with located problems."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, [ConfigErrorDetail("", "the top level must be a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, validation_details(error)) from None


def load_config(model: type[ModelT], path: str | Path) -> ModelT:
    """Read a YAML file and validate it against the model; every failure is a located ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(source, [ConfigErrorDetail("", f"cannot read file: {error}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [ConfigErrorDetail(where, f"invalid YAML: {problem}")]) from None
    return parse_config(model, data, source)


def read_secret_file(path: Path) -> str:
    """Return a secret file's content without its trailing newline (as Prometheus reads `*_file` secrets), or
    raise ValueError saying why: unreadable, or empty or white space only."""
    try:
        content = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read secret file {path}: {error}") from None
    if not content.strip():
        raise ValueError(f"secret file {path} is empty or white space only")
    return content


def check_secret(value: str, name: str) -> str:
    """Return an inline secret unchanged, or raise ValueError when it is empty or white space only."""
    if not value.strip():
        raise ValueError(f"{name} is empty or white space only")
    return value


def required_secret(value: SecretStr | None, file: Path | None, name: str) -> str:
    """Resolve a required `name` / `name_file` pair: exactly one must be given, readable and not blank."""
    if (value is None) == (file is None):
        raise ValueError(f"give exactly one of {name} or {name}_file")
    resolved = secret_from_fields(value.get_secret_value() if value is not None else None, file, name)
    assert resolved is not None  # one of the two was given
    return resolved


def secret_from_fields(value: str | None, file: Path | None, name: str) -> str | None:
    """Resolve a `name` / `name_file` pair at load time; both set, an unreadable file, or an empty or blank
    secret (inline or in its file) is an error; neither set is None."""
    if value is not None and file is not None:
        raise ValueError(f"give {name} or {name}_file, not both")
    if file is not None:
        return read_secret_file(file)
    return None if value is None else check_secret(value, name)
