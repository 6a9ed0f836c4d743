"""Run the weekly (or daily) report on a schedule: a crontab entry, a systemd user timer, or a scheduled
GitHub Actions workflow.

Both run ``orchestrator report weekly --catch-up --out DIR``: each run writes every report missing from the
folder (the week that just ended, and any a switched-off machine skipped), and rewriting an existing one is
a no-op, so a run that fires twice or late does no harm.

The crontab entry is one line ending in a marker comment naming the repository; installing replaces a line
with the same marker, uninstalling removes it, so the rest of the user's crontab stays exactly as it was.
The systemd user timer is a ``.service`` and a ``.timer`` in ``~/.config/systemd/user`` (``Persistent=true``:
a run missed while the machine was off happens at the next boot), both starting with the marker line;
uninstalling disables the timer and deletes only files with that marker. The workflow is one file, ``.github/workflows/orchestrator-report-PERIOD.yml``, that starts with a marker
line; it is never written over a file without that marker, and uninstalling deletes only a file with it.
The store (``.orchestrator/state.db``) is not committed, so the workflow runs on a self-hosted runner on
the machine that holds it; it keeps the folder as a build artifact and commits it to a branch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bno_foundation.atomic import atomic_write
from bno_orchestrator.errors import UserError

MARKER = "bno-orchestrator report schedule"
CRON_TIMES = {"weekly": "15 6 * * 1", "daily": "15 6 * * *"}  # Mondays / every day, 06:15 (cron's time zone)
CALENDARS = {"weekly": "Mon *-*-* 06:15:00", "daily": "*-*-* 06:15:00"}  # the same, as systemd OnCalendar
WHEN_TEXT = {"weekly": "Mondays 06:15", "daily": "every day at 06:15"}
DEFAULT_BRANCH = "status-reports"
DEFAULT_RUNNER_LABEL = "orchestrator"


@dataclass(frozen=True, slots=True)
class Schedule:
    """What to run and where the reports go (all paths absolute)."""

    period: str  # weekly | daily
    repo: Path
    out: Path
    fmt: str  # md | html | json
    program: tuple[str, ...]  # how to start the orchestrator here
    branch: str = DEFAULT_BRANCH
    runner_label: str = DEFAULT_RUNNER_LABEL

    @property
    def marker(self) -> str:
        """The comment that tags this repository's entry for this period."""
        return f"{MARKER}: {self.period} {self.repo}"

    def command(self) -> list[str]:
        """The report command, as argv."""
        return [*self.program, "--repo", str(self.repo), "report", self.period, "--catch-up",
                "--out", str(self.out), "--format", self.fmt]

    @property
    def log_file(self) -> Path:
        """Where the cron job appends its output."""
        return self.repo / ".orchestrator" / f"report-{self.period}.log"

    @property
    def unit_name(self) -> str:
        """The systemd unit name (without suffix): one per repository and period."""
        digest = hashlib.sha256(str(self.repo).encode("utf-8")).hexdigest()[:8]
        return f"bno-report-{self.period}-{digest}"

    @property
    def workflow_path(self) -> Path:
        """The workflow file in the repository."""
        return self.repo / ".github" / "workflows" / f"orchestrator-report-{self.period}.yml"


def program() -> tuple[str, ...]:
    """How to start this orchestrator from cron or a runner: the ``orchestrator`` script next to this
    Python, else the one on PATH, else ``python -m bno_orchestrator.cli``."""
    beside = Path(sys.executable).parent / "orchestrator"
    if beside.is_file() and os.access(beside, os.X_OK):
        return (str(beside),)
    found = shutil.which("orchestrator")
    if found:
        return (str(Path(found).resolve()),)
    return (sys.executable, "-m", "bno_orchestrator.cli")


# ------------------------------------------------------------------------------------------------ cron


def _cron_quote(text: str) -> str:
    """A shell word safe in a crontab line (cron turns an unescaped ``%`` into a newline)."""
    return shlex.quote(text).replace("%", "\\%")


def crontab_line(schedule: Schedule) -> str:
    """The crontab line that runs the report (its output appended to the log file)."""
    command = " ".join(_cron_quote(word) for word in schedule.command())
    log = _cron_quote(str(schedule.log_file))
    return f"{CRON_TIMES[schedule.period]} {command} >> {log} 2>&1 # {schedule.marker}"


def _crontab_program() -> str:
    found = shutil.which("crontab")
    if found is None:
        raise UserError("crontab: no crontab program on PATH (install cron, or use --install github)")
    return found


def read_crontab() -> str:
    """The user's crontab ('' when there is none)."""
    proc = subprocess.run([_crontab_program(), "-l"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise UserError(f"crontab -l failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def write_crontab(text: str) -> None:
    """Replace the user's crontab with ``text``."""
    proc = subprocess.run([_crontab_program(), "-"], input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"crontab - failed (exit {proc.returncode}): {proc.stderr.strip()}")


def with_entry(crontab: str, schedule: Schedule) -> str:
    """``crontab`` with this schedule's line (replacing an earlier one with the same marker)."""
    kept = [line for line in crontab.splitlines() if not line.endswith(f"# {schedule.marker}")]
    return "\n".join([*kept, crontab_line(schedule)]) + "\n"


def without_entry(crontab: str, schedule: Schedule) -> str:
    """``crontab`` without this schedule's line (everything else unchanged)."""
    lines = crontab.splitlines(keepends=True)
    return "".join(line for line in lines if not line.rstrip("\n").endswith(f"# {schedule.marker}"))


def install_cron(schedule: Schedule) -> str:
    """Add (or refresh) the crontab entry; returns the line."""
    write_crontab(with_entry(read_crontab(), schedule))
    return crontab_line(schedule)


def uninstall_cron(schedule: Schedule) -> bool:
    """Remove the crontab entry; False when there was none."""
    before = read_crontab()
    after = without_entry(before, schedule)
    if after == before:
        return False
    write_crontab(after)
    return True


# --------------------------------------------------------------------------------------------- systemd


def unit_dir() -> Path:
    """Where systemd looks for the user's units: ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/...``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _systemd_quote(word: str) -> str:
    """One ``ExecStart`` word: double-quoted, with systemd's specifier (``%``) and variable (``$``) signs
    doubled."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_units(schedule: Schedule) -> dict[str, str]:
    """The ``.service`` and ``.timer`` files: file name -> text."""
    command = " ".join(_systemd_quote(word) for word in schedule.command())
    head = f"# {schedule.marker}\n# Written by `orchestrator report schedule --install systemd`.\n"
    service = (f"{head}[Unit]\nDescription=Status report ({schedule.period}) of {schedule.repo}\n\n"
               f"[Service]\nType=oneshot\nExecStart={command}\n")
    timer = (f"{head}[Unit]\nDescription=Status report ({schedule.period}) of {schedule.repo}, on a schedule\n\n"
             f"[Timer]\nOnCalendar={CALENDARS[schedule.period]}\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return {f"{schedule.unit_name}.service": service, f"{schedule.unit_name}.timer": timer}


def _systemctl(*args: str) -> None:
    found = shutil.which("systemctl")
    if found is None:
        raise UserError("systemctl: not on PATH (no systemd here; use --install cron or github)")
    proc = subprocess.run([found, "--user", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UserError(f"systemctl --user {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}")


def install_systemd(schedule: Schedule) -> list[Path]:
    """Write the two units, reload systemd and enable and start the timer; returns the files."""
    folder = unit_dir()
    units = systemd_units(schedule)
    for name in units:
        if (folder / name).exists() and not _ours(folder / name, schedule):
            raise UserError(f"{folder / name}: exists and was not written by `orchestrator report schedule`")
    for name, text in units.items():
        atomic_write(folder / name, text)
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", f"{schedule.unit_name}.timer")
    return [folder / name for name in units]


def uninstall_systemd(schedule: Schedule) -> bool:
    """Disable the timer and delete the units this command wrote; False when there were none."""
    folder = unit_dir()
    ours = [folder / name for name in systemd_units(schedule) if _ours(folder / name, schedule)]
    if not ours:
        return False
    _systemctl("disable", "--now", f"{schedule.unit_name}.timer")
    for path in ours:
        path.unlink()
    _systemctl("daemon-reload")
    return True


# ---------------------------------------------------------------------------------------------- github


def workflow_text(schedule: Schedule) -> str:
    """The GitHub Actions workflow that runs the report on a schedule (and by hand)."""
    from bno_quality_gates.export_actions import (  # the action versions, in one place
        CHECKOUT,
        UPLOAD_ARTIFACT,
    )

    command = " ".join(shlex.quote(word) for word in schedule.command())
    cron = CRON_TIMES[schedule.period]
    artifact = f"status-reports-{schedule.period}"
    return f"""# {schedule.marker}
# Written by `orchestrator report schedule --install github`; remove it with `--uninstall github`.
# The store (.orchestrator/state.db) is not committed, so this runs on a self-hosted runner labelled
# "{schedule.runner_label}" on the machine that holds it.
name: Status report ({schedule.period})
on:
  schedule:
    - cron: "{cron}"  # {WHEN_TEXT[schedule.period]} UTC
  workflow_dispatch: {{}}
permissions:
  contents: write
concurrency:
  group: {artifact}
  cancel-in-progress: false
jobs:
  report:
    runs-on: [self-hosted, {schedule.runner_label}]
    env:
      REPORT_DIR: {json.dumps(str(schedule.out))}
    steps:
      - name: Write the missing reports
        run: |
          {command}
      - name: Keep the reports as an artifact
        uses: {UPLOAD_ARTIFACT}
        with:
          name: {artifact}
          path: ${{{{ env.REPORT_DIR }}}}
      - uses: {CHECKOUT}
        with:
          path: publish
          fetch-depth: 0
      - name: Commit the reports to the {schedule.branch} branch
        working-directory: publish
        run: |
          if git ls-remote --exit-code --heads origin {schedule.branch} >/dev/null; then
            git switch {schedule.branch}
          else
            git switch --orphan {schedule.branch}
          fi
          find . -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {{}} +
          cp -R "$REPORT_DIR"/. .
          git add -A
          if git diff --cached --quiet; then exit 0; fi
          git -c user.name="orchestrator report" -c user.email="orchestrator-report@users.noreply.github.com" \\
            commit -m "Status reports ({schedule.period}) $(date -u +%Y-%m-%d)"
          git push origin {schedule.branch}
"""


def _ours(path: Path, schedule: Schedule) -> bool:
    try:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    return bool(first) and first[0].startswith(f"# {MARKER}: {schedule.period} ")


def install_github(schedule: Schedule) -> Path:
    """Write the workflow file; refuses to replace a file this command did not write."""
    path = schedule.workflow_path
    if path.exists() and not _ours(path, schedule):
        raise UserError(f"{path}: exists and was not written by `orchestrator report schedule`; "
                        "move it away or choose another repository")
    atomic_write(path, workflow_text(schedule))
    return path


def uninstall_github(schedule: Schedule) -> bool:
    """Delete the workflow file if this command wrote it; False when there was none."""
    path = schedule.workflow_path
    if not path.exists():
        return False
    if not _ours(path, schedule):
        raise UserError(f"{path}: was not written by `orchestrator report schedule`; left in place")
    path.unlink()
    return True
