"""The orchestrator's one clock: the real time, or a fixed instant for reproducible reports and tests.

:func:`bno_orchestrator.models.utcnow` asks :func:`now`, and the store stamps every event with it, so one
setting fixes the time for a whole command. The instant comes from, in this order:

1. ``--now TIME`` (the global option, :func:`add_now_option`), for one command;
2. the environment variable ``ORCHESTRATOR_NOW``, for a shell session, a cron job or a test;
3. the system clock.

``TIME`` is ISO 8601 (``2026-01-12``, ``2026-01-12T09:30``, ``2026-01-12T09:30:00+01:00``,
``2026-01-12T09:30Z``); a time without an offset is taken to be UTC. A bad value is a user error that
names the option or the variable and repeats the value (exit code 2). This module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bno_orchestrator.errors import UserError

ENV_VAR = "ORCHESTRATOR_NOW"
OPTION = "--now"
EXAMPLE = "2026-01-12T09:00Z"

_fixed: dt.datetime | None = None


class ClockError(UserError, ValueError):
    """A time given for the clock is not ISO 8601 (a user error: the message names where it came from)."""


def parse_instant(text: str, source: str) -> dt.datetime:
    """``text`` as an aware UTC datetime; :class:`ClockError` naming ``source`` (the option or variable)
    and the bad value otherwise."""
    value = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ClockError(f"{source}: expected an ISO 8601 time such as {EXAMPLE} or 2026-01-12, "
                         f"not {text!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def fix(when: dt.datetime | None) -> None:
    """Fix the clock at ``when`` for this process (None: back to ``ORCHESTRATOR_NOW`` or the system)."""
    global _fixed
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    _fixed = None if when is None else when.astimezone(dt.UTC)


@contextmanager
def fixed(when: dt.datetime) -> Iterator[dt.datetime]:
    """Within the block the clock reads ``when``; the previous setting is restored after it."""
    before = _fixed
    fix(when)
    try:
        yield now()
    finally:
        fix(before)


def now() -> dt.datetime:
    """The current time, aware UTC: the fixed instant, else ``ORCHESTRATOR_NOW``, else the system clock."""
    if _fixed is not None:
        return _fixed
    from_env = os.environ.get(ENV_VAR)
    if from_env is not None and from_env.strip():
        return parse_instant(from_env, ENV_VAR)
    return dt.datetime.now(dt.UTC)


class _FixClock(argparse.Action):
    """``--now TIME``: checks the value and fixes the clock as the command line is parsed."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        text = str(values)
        try:
            when = parse_instant(text, option_string or OPTION)
        except ClockError as exc:
            parser.error(str(exc))
        fix(when)
        setattr(namespace, self.dest, when)


def add_now_option(parser: argparse.ArgumentParser) -> None:
    """Add the global ``--now TIME`` option to ``parser``.

    A parser starts from the real clock: adding the option releases a clock fixed by an earlier command
    line parsed in the same process (a test that runs several commands).
    """
    fix(None)
    parser.add_argument(
        OPTION, action=_FixClock, default=None, metavar="TIME",
        help=f"run as if it were TIME (ISO 8601, e.g. {EXAMPLE}; a time without offset is UTC); "
             f"also ${ENV_VAR}. Fixes the clock that stamps events and picks report windows",
    )
