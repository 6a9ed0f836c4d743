"""``quality-gates``: run a repository's gate DAG; what the installed git hooks call.

``quality-gates run [--hook pre-commit|pre-push | --all | --only GATE ...] [--config FILE]``. The gates
file defaults to the repository's ``workflows/gates.yaml``; whoever installs the hooks passes ``--config``
when the repository has none of its own. The pre-commit fast path (no staged file touches any gate)
imports only the standard library, PyYAML and the glob matcher: it costs little more than starting Python.

A pre-commit run tests a snapshot of the index. The pre-push hook calls ``quality-gates run --hook pre-push
REMOTE URL`` with git's stdin: one line per pushed ref, ``<local ref> <local sha> <remote ref> <remote
sha>``. Each pushed commit is tested on its own tree, with ``remote sha...local sha`` as the change that
selects the affected gates (every pre-push gate for a new branch, whose remote sha is all zeros); a deleted
ref (local sha all zeros) is not tested. Without REMOTE and URL (by hand) it tests HEAD's commit.

A gate that fails prints the tail of its output (control characters made visible) on stderr.

The orchestrator's ``gates run`` resolves its paths and calls :func:`run_gates` with the same arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bno_foundation.cli import EXIT_OK, CliArgumentParser, print_json, run_cli
from bno_foundation.errors import ConfigError, UserError
from bno_foundation.repo import find_repo_root
from bno_foundation.terminal import safe_console, visible
from bno_quality_gates import GATES_FILE, STATE_DIR_NAME, STORE_FILE_NAME

HOOKS = ("pre-commit", "pre-push")


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The arguments of a gate run (shared with ``orchestrator gates run``)."""
    which = run.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every gate, affected or not")
    which.add_argument("--only", nargs="+", metavar="GATE", help="these gates (and their upstream)")
    which.add_argument("--hook", choices=HOOKS, help="what a git hook runs")
    run.add_argument("--base", default=None, help="the base ref: changes since it (default: uncommitted work)")
    run.add_argument("--no-deps", action="store_true", help="with --only: do not run upstream gates")
    run.add_argument("--no-cache", action="store_true", help="run even when a pass is cached")
    run.add_argument("--workers", type=int, default=None, help="parallel gates (default: the gates file)")
    run.add_argument("--source", choices=["worktree", "index"], default=None,
                     help="test the working tree, or a snapshot of the staged content (a pre-commit run "
                          "always tests the index; a pre-push run the pushed commits)")
    run.add_argument("--quiet", action="store_true", help="only the verdict line")
    run.add_argument("--config", default=None, help=f"the gates file (default: {GATES_FILE})")
    run.add_argument("--json", action="store_true",
                     help="print the run record as JSON (a list of records when a push tests several commits)")
    run.add_argument("hook_args", nargs="*", metavar="REMOTE URL",
                     help="with --hook pre-push: the remote's name and URL as git passes them; the pushed refs "
                          "are then read from stdin")


ZERO_SHA = frozenset("0")


def _is_null(sha: str) -> bool:
    return bool(sha) and set(sha) <= ZERO_SHA


def parse_push_lines(text: str) -> list[tuple[str, str, str | None]]:
    """git's pre-push stdin -> ``(local ref, local sha, remote sha or None)`` per pushed commit.

    Deletions (local sha all zeros) are left out; a new branch (remote sha all zeros) has no remote sha; the
    same commit pushed against the same remote sha is tested once. UserError naming the line on bad input.
    """
    out: list[tuple[str, str, str | None]] = []
    seen: set[tuple[str, str | None]] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4 or not all(_is_hex(f) for f in (fields[1], fields[3])):
            raise UserError(f"pre-push stdin line {number}: expected '<local ref> <local sha> <remote ref> "
                            f"<remote sha>', got {line!r}")
        local_ref, local_sha, _, remote_sha = fields
        if _is_null(local_sha):
            continue
        base = None if _is_null(remote_sha) else remote_sha
        if (local_sha, base) not in seen:
            seen.add((local_sha, base))
            out.append((local_ref, local_sha, base))
    return out


def _is_hex(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text.lower())


def _progress(console: Any) -> Any:
    """A gate's start and end, one line each on ``console`` (its name and reason shown as text)."""
    from rich.text import Text

    def on_event(event: str, name: str, result: Any) -> None:
        if event == "start":
            console.print(Text.assemble(("…", "dim"), visible(f" {name} started")))
            return
        from bno_quality_gates.summary import STATUS_STYLE

        detail = f" ({result.reason})" if result.reason else ""
        console.print(Text.assemble((f"{result.status:>8}", STATUS_STYLE.get(result.status, "")),
                                    visible(f" {name} {result.duration:.2f}s{detail}")))

    return on_event


def _mode(args: argparse.Namespace) -> str:
    if args.hook:
        return "hook"
    if args.all:
        return "all"
    return "only" if args.only else "affected"


def run_gates(args: argparse.Namespace, *, repo: Path, config_path: Path, state_dir: Path) -> int:
    """Run the gates as ``args`` asks (the arguments of :func:`add_run_arguments`); returns the exit code."""
    if args.hook_args and args.hook != "pre-push":
        raise UserError(f"unexpected argument(s) {' '.join(args.hook_args)!r}: REMOTE and URL go with --hook pre-push")
    if args.hook == "pre-commit" and not args.json:
        # the fast path: no validation machinery when no staged file can affect any gate
        from bno_quality_gates.fastpath import nothing_affected, record_noop, skip_from_env

        staged = nothing_affected(repo, config_path)
        if staged is not None:
            run_id = record_noop(state_dir / STORE_FILE_NAME, repo, staged, skip_from_env())
            print(f"nothing to check: no gate is affected by the {len(staged)} staged file(s) (run {run_id})")
            return EXIT_OK
    from rich.text import Text

    from bno_quality_gates.runner import Runner, RunOptions
    from bno_quality_gates.spec import load_gates
    from bno_quality_gates.summary import render_table, verdict_line

    if not config_path.is_file():
        raise ConfigError("no gates file here (pass --config FILE)", path=config_path)
    config = load_gates(config_path)
    for warning in config.warnings:  # plain text: a file's content is never markup
        print(visible(f"warning: {warning}"), file=sys.stderr)
    mode = _mode(args)
    if args.no_deps and mode != "only":
        raise UserError("--no-deps goes with --only")
    base = args.base
    if base and set(base) == {"0"}:
        base = None  # git's "no commit" (a new branch pushed, a first push in CI)
    from bno_quality_gates.fastpath import skip_from_env
    from bno_quality_gates.summary import render_failures

    err = safe_console(stderr=True, highlight=False)  # gate names, reasons and output shown as text
    targets: list[tuple[str | None, str | None, str | None]] = [(None, None, base)]  # (ref, commit, base)
    if args.hook == "pre-push":
        targets = _push_targets(args, repo, base, err)
        if not targets:
            print("nothing to check: the push only deletes refs")
            return EXIT_OK
    records = []
    for ref, commit, target_base in targets:
        options = RunOptions(
            repo=repo, mode=mode, hook=args.hook, base=target_base, only=list(args.only or []),
            no_deps=args.no_deps, use_cache=not args.no_cache, workers=args.workers, skip=skip_from_env(),
            source=args.source or ("index" if args.hook == "pre-commit" else "worktree"),
            state_dir=state_dir, db_path=state_dir / STORE_FILE_NAME, commit=commit, subreaper=True,
        )
        if commit is not None and not (args.json or args.quiet):
            err.print(Text(visible(f"testing {ref or 'HEAD'} at {commit[:12]}")
                           + (f" (changes since {target_base[:12]})" if target_base else " (every pre-push gate)"),
                           style="bold"))
        record = Runner(config, options, on_event=None if (args.json or args.quiet) else _progress(err)).run()
        records.append(record)
        if args.quiet:
            print(verdict_line(record))
        elif not args.json:
            render_table(record)
            print(visible(f"records: {record.run_dir}"))
        render_failures(record, err)
        if record.overridden:
            err.print(Text(visible(f"SKIP requested for required gate(s) {', '.join(record.overridden)}: "
                                   "recorded, not green"), style="yellow"))
    if args.json:
        print_json(records[0].to_json() if len(records) == 1 else [r.to_json() for r in records])
    return max(r.exit_code for r in records)


def _push_targets(args: argparse.Namespace, repo: Path, base: str | None,
                  err: Any) -> list[tuple[str | None, str | None, str | None]]:
    """What a pre-push run tests: each pushed commit read from stdin (when git gave REMOTE and URL), else
    HEAD's commit against ``--base``. A remote sha this repository lacks means no known base."""
    import sys

    from rich.text import Text

    if not args.hook_args:
        return [(None, _commit_of(repo, "HEAD") or "HEAD", base)]
    targets: list[tuple[str | None, str | None, str | None]] = []
    for ref, local_sha, remote_sha in parse_push_lines(sys.stdin.read()):
        if remote_sha is not None and _commit_of(repo, remote_sha) is None:
            err.print(Text(visible(f"{ref}: the remote's commit {remote_sha[:12]} is not in this repository "
                                   "(fetch it to test only what changed): every pre-push gate runs"), style="yellow"))
            remote_sha = None
        targets.append((ref, local_sha, remote_sha))
    return targets


def _commit_of(repo: Path, ref: str) -> str | None:
    import subprocess

    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=repo,
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _cmd_run(args: argparse.Namespace) -> int:
    repo = Path(args.repo).resolve() if args.repo else find_repo_root()
    config_path = Path(args.config) if args.config else repo / GATES_FILE
    state_dir = Path(args.state_dir) if args.state_dir else repo / STATE_DIR_NAME
    return run_gates(args, repo=repo, config_path=config_path, state_dir=state_dir)


def build_parser() -> argparse.ArgumentParser:
    """The ``quality-gates`` argument parser."""
    from bno_quality_gates.version import VERSION

    parser = CliArgumentParser(prog="quality-gates", description="Run a repository's quality-gate DAG.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    parser.add_argument("--repo", default=None, help="the repository (default: the enclosing git repo)")
    parser.add_argument("--state-dir", default=None, help=f"records and caches (default: REPO/{STATE_DIR_NAME})")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CliArgumentParser)
    run = sub.add_parser("run", help="run the affected gates (or --all, --only, --hook)")
    add_run_arguments(run)
    run.set_defaults(handler=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    return run_cli("quality-gates", build_parser(), argv, (UserError,))


if __name__ == "__main__":
    raise SystemExit(main())
