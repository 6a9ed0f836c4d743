"""Which store a repository uses: a URL from the environment, the repository's config, or the SQLite default.

Precedence: ``ORCHESTRATOR_STORE_URL`` (one clone, one worker, CI), then ``url:`` in the repository's
``workflows/store.yaml`` (committed: every clone of the team gets it), then the embedded SQLite file
``REPO/.orchestrator/state.db``. Accepted URLs: ``sqlite:///ABSOLUTE/PATH`` (or ``sqlite:RELATIVE`` to the
repository) and ``postgresql://`` / ``postgres://`` (libpq's URL form). A password never belongs in the
committed file (it is refused there, with its line): libpq reads ``PGPASSWORD`` or ``~/.pgpass``.
:func:`redact` is what every message shows of a URL: the password replaced by ``***``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from bno_orchestrator.errors import ConfigError
from bno_orchestrator.paths import store_path

ENV_VAR = "ORCHESTRATOR_STORE_URL"
CONFIG_FILE = "store.yaml"  # under REPO/workflows/
SQLITE = "sqlite"
POSTGRES = "postgresql"
_POSTGRES_SCHEMES = ("postgresql", "postgres")


class StoreFile(BaseModel):
    """``workflows/store.yaml``: where the team's store is."""

    model_config = ConfigDict(extra="forbid")
    url: str


@dataclass(frozen=True)
class StoreTarget:
    """A resolved store: its engine, the URL (``postgresql``) or file (``sqlite``), and where it came from."""

    engine: str
    url: str
    path: Path | None  # the SQLite file (None for PostgreSQL)
    source: str  # "environment", the config file's path, or "default"

    @property
    def display(self) -> str:
        """The location as messages show it (no password)."""
        return str(self.path) if self.path is not None else redact(self.url)


def redact(url: str) -> str:
    """``url`` with any password (in the authority or a ``password=`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="/:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) with the URL's password, wherever it appears, as ``***``."""
    parts = urlsplit(url)
    secrets = [parts.password] if parts.password else []
    secrets += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password" and v]
    text = text.replace(url, redact(url))
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password."""
    parts = urlsplit(url)
    if parts.password:
        return True
    return any(k.lower() == "password" for k, _ in parse_qsl(parts.query, keep_blank_values=True))


def parse(url: str, repo: Path | None = None, *, source: str = "argument") -> StoreTarget:
    """A store URL -> its :class:`StoreTarget` (a ConfigError for an unknown scheme)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in _POSTGRES_SCHEMES:
        return StoreTarget(POSTGRES, url, None, source)
    if scheme == SQLITE:
        rest = url[len("sqlite:"):]
        rest = rest[2:] if rest.startswith("//") else rest  # sqlite:///abs -> /abs; sqlite:rel -> rel
        rest = "/" + rest.lstrip("/") if rest.startswith("/") else rest  # sqlite:////abs -> /abs too
        if not rest:
            raise ConfigError(f"store URL {url!r} names no file (sqlite:///ABSOLUTE/PATH)", path=source)
        file = Path(rest)
        if not file.is_absolute():
            file = (repo or Path.cwd()) / file
        return StoreTarget(SQLITE, url, file, source)
    raise ConfigError(f"store URL {redact(url)!r} is neither sqlite:// nor postgresql://", path=source)


def config_file(repo: Path) -> Path:
    """``REPO/workflows/store.yaml``."""
    return Path(repo) / "workflows" / CONFIG_FILE


def resolve(repo: Path, *, environ: dict[str, str] | None = None) -> StoreTarget:
    """The store ``repo`` uses (see the module docstring for the precedence)."""
    env = os.environ if environ is None else environ
    from_env = env.get(ENV_VAR, "").strip()
    if from_env:
        return parse(from_env, repo, source=f"${ENV_VAR}")
    path = config_file(repo)
    if path.is_file():
        from bno_foundation.yamlio import load_yaml, validate

        located = load_yaml(path)
        spec = validate(StoreFile, located)
        if has_password(spec.url):
            raise located.error("a password does not belong in a committed file: put it in ~/.pgpass or "
                                "PGPASSWORD, or set ORCHESTRATOR_STORE_URL on this machine", ("url",))
        try:
            return parse(spec.url, repo, source=str(path))
        except ConfigError as exc:
            raise located.error(exc.reason, ("url",)) from None
    return StoreTarget(SQLITE, f"sqlite:///{store_path(Path(repo))}", store_path(Path(repo)), "default")
