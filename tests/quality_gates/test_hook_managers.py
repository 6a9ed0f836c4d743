"""Hooks beside pre-commit, lefthook and husky: the entries as text, detection, and real commits and pushes
through each real tool (install, re-sync, uninstall), and ``hooks status`` telling the truth."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bno_orchestrator.cli import main
from bno_quality_gates import hooks
from bno_quality_gates.errors import GateError
from tests.quality_gates.conftest import git
from tests.quality_gates.hook_env import (
    USER_HOOK_LINE,
    add_failing_gate,
    bare_remote,
    calls,
    commit,
    hook_env,
    recording_launcher,
    run,
    tool,
    user_log,
)

COMMAND = "'/opt/my venv/bin/quality-gates' run --hook pre-commit"

PRE_COMMIT_CONFIG = f"""\
# the team's hooks: pre-commit's own four-space style
default_language_version:
    python: python3
repos:
    # a local hook of the team
    -   repo: local
        hooks:
        -   id: team
            name: team hook
            entry: sh -c '{USER_HOOK_LINE.format(who="pre-commit-user")}'
            language: system
            pass_filenames: false
            always_run: true
"""

LEFTHOOK_CONFIG = f"""\
# the team's lefthook config
pre-commit:
  parallel: true
  jobs:
    # ours go first
    - name: team
      run: {USER_HOOK_LINE.format(who="lefthook-user")}
"""

HUSKY_HOOK = USER_HOOK_LINE.format(who="husky-user") + "\n"


# ------------------------------------------------------------------------------------- entries as text


def test_pre_commit_entries_keep_the_users_text_and_come_out_byte_for_byte() -> None:
    path = Path(".pre-commit-config.yaml")
    text = PRE_COMMIT_CONFIG
    for hook in reversed(hooks.HOOKS):  # as install does: each goes first
        text = hooks.add_pre_commit_entry(text, hook, COMMAND, path)
    assert hooks.add_pre_commit_entry(text, "pre-commit", COMMAND, path) == text, "idempotent"
    assert hooks.add_pre_commit_entry(text, "pre-push", COMMAND, path) == text
    assert all(line in text.splitlines() for line in PRE_COMMIT_CONFIG.splitlines()), "no user line changed"
    assert text.index("quality-gates pre-commit:") < text.index("quality-gates pre-push:") < text.index("id: team")
    data = yaml.safe_load(text)
    ours = {h["id"]: h for repo in data["repos"] for h in repo["hooks"]}
    assert ours["quality-gates-pre-commit"] == {
        "id": "quality-gates-pre-commit", "name": "quality gates (pre-commit)", "entry": COMMAND,
        "language": "system", "pass_filenames": False, "always_run": True, "require_serial": True,
        "stages": ["pre-commit"],
    }
    assert ours["quality-gates-pre-push"]["stages"] == ["pre-push"]
    assert '"$PRE_COMMIT_REMOTE_NAME" "$PRE_COMMIT_REMOTE_URL"' in ours["quality-gates-pre-push"]["entry"]
    assert data["default_language_version"] == {"python": "python3"}
    for hook in hooks.HOOKS:
        text = hooks.remove_block(text, hook, where=path)
    assert text == PRE_COMMIT_CONFIG


@pytest.mark.parametrize(
    ("original", "where"),
    [
        (LEFTHOOK_CONFIG, "jobs"),
        ("pre-commit:\n  commands:\n    team:\n      run: echo team\n", "commands"),
        ("pre-commit:\n    parallel: true\n", "jobs"),
        ("min_version: 1.5.0\nskip_lfs: true", "jobs"),  # no pre-commit key, no final newline
        ("", "jobs"),
    ],
)
def test_lefthook_entries_go_where_lefthook_reads_them(original: str, where: str) -> None:
    path = Path("lefthook.yml")
    text = original
    for hook in hooks.HOOKS:
        text = hooks.add_lefthook_entry(text, hook, COMMAND, path)
    data = yaml.safe_load(text)
    if where == "jobs":
        job = next(j for j in data["pre-commit"]["jobs"] if j["name"] == hooks.JOB_NAME)
    else:
        job = data["pre-commit"]["commands"][hooks.JOB_NAME]
    assert job["run"] == COMMAND
    push = next(j for j in data["pre-push"]["jobs"] if j["name"] == hooks.JOB_NAME)
    assert push["run"].endswith(" '{1}' '{2}'") and push["use_stdin"] is True
    for hook in hooks.HOOKS:
        text = hooks.remove_block(text, hook, where=path)
    assert text == original


def test_husky_line_is_appended_and_cut_exactly() -> None:
    for original in (HUSKY_HOOK, HUSKY_HOOK.rstrip("\n"), ""):
        text = hooks.add_husky_entry(original, "pre-push", "qg run --hook pre-push")
        assert text.splitlines()[-2] == 'qg run --hook pre-push "$@"'
        assert hooks.remove_block(text, "pre-push", where=Path(".husky/pre-push")) == original


def test_lists_that_cannot_take_a_text_entry_are_refused_with_file_and_line() -> None:
    with pytest.raises(GateError, match=r"^\.pre-commit-config\.yaml:2: `repos` is not a block list.*--print"):
        hooks.add_pre_commit_entry("# x\nrepos: []\n", "pre-commit", COMMAND, Path(".pre-commit-config.yaml"))
    with pytest.raises(GateError, match=r"^lefthook\.yml:1: `pre-push` is not a block mapping"):
        hooks.add_lefthook_entry("pre-push: {parallel: true}\n", "pre-push", COMMAND, Path("lefthook.yml"))
    with pytest.raises(GateError, match=r"^lefthook\.yml:3:1: not valid YAML \(expected ',' or '\]', but got '<stream end>'\)"):
        hooks.add_lefthook_entry("a: [\nb: 1\n", "pre-push", COMMAND, Path("lefthook.yml"))
    with pytest.raises(GateError, match=r"x\.yml:2: our block for pre-commit has no end line"):
        hooks.remove_block("a: 1\n" + hooks.block_begin("pre-commit") + "\n", "pre-commit", where=Path("x.yml"))


# ----------------------------------------------------------------------------------------- detection


def test_detection_follows_hooks_path_then_hook_scripts_then_configs(repo: Path) -> None:
    assert hooks.detect(repo).manager == "git"
    (repo / ".pre-commit-config.yaml").write_text(PRE_COMMIT_CONFIG)
    assert hooks.detect(repo).manager == "pre-commit"
    (repo / ".lefthook.yml").write_text(LEFTHOOK_CONFIG)
    assert hooks.detect(repo).manager == "lefthook", "both configs: lefthook's wins until a hook is installed"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\n")
    found = hooks.detect(repo)
    assert (found.manager, found.config) == ("pre-commit", repo / ".pre-commit-config.yaml")
    git(repo, "config", "core.hooksPath", ".husky/_")
    found = hooks.detect(repo)
    assert (found.manager, found.config) == ("husky", repo / ".husky")
    git(repo, "config", "core.hooksPath", "tools/githooks")
    assert hooks.detect(repo).manager == "git"


# ------------------------------------------------------------------------------ real tools, real commits


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The hooks' environment (:func:`hook_env`), also this process's: install finds the managers on PATH."""
    environment = hook_env(tmp_path)
    for name in ("PATH", "PRE_COMMIT_HOME"):
        monkeypatch.setenv(name, environment[name])
    for name in ("SKIP", "LEFTHOOK", "HUSKY"):
        monkeypatch.delenv(name, raising=False)
    return environment


def _pre_commit_setup(repo: Path, env: dict[str, str]) -> list[Path]:
    tool("pre-commit")
    (repo / ".pre-commit-config.yaml").write_text(PRE_COMMIT_CONFIG)
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "pre-commit config", "--no-verify")
    assert run([tool("pre-commit"), "install"], repo, env).returncode == 0
    return [repo / ".pre-commit-config.yaml"]


def _lefthook_setup(repo: Path, env: dict[str, str]) -> list[Path]:
    (repo / "lefthook.yml").write_text(LEFTHOOK_CONFIG)
    assert run([tool("lefthook"), "install"], repo, env).returncode == 0
    return [repo / "lefthook.yml"]


def _husky_setup(repo: Path, env: dict[str, str]) -> list[Path]:
    assert run([tool("husky")], repo, env).returncode == 0
    (repo / ".husky" / "pre-commit").write_text(HUSKY_HOOK)
    return [repo / ".husky" / "pre-commit", repo / ".husky" / "pre-push"]


SETUPS: dict[str, tuple[Callable[[Path, dict[str, str]], list[Path]], list[str], str]] = {
    # manager: (the user's own setup, the manager's re-sync, the user's hook's mark)
    "pre-commit": (_pre_commit_setup, ["pre-commit", "install", "--hook-type", "pre-commit",
                                        "--hook-type", "pre-push"], "pre-commit-user"),
    "lefthook": (_lefthook_setup, ["lefthook", "install"], "lefthook-user"),
    "husky": (_husky_setup, ["husky"], "husky-user"),
}


def _snapshot(paths: list[Path]) -> dict[Path, bytes | None]:
    return {p: p.read_bytes() if p.is_file() else None for p in paths}


@pytest.mark.parametrize("manager", list(SETUPS))
def test_gates_run_through_the_manager_survive_a_resync_and_leave_no_trace(
    manager: str, repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    setup, resync, mark = SETUPS[manager]
    gate_log = tmp_path / "gate.log"
    add_failing_gate(repo, gate_log)
    files = setup(repo, env)
    before = _snapshot(files)
    staged = [".pre-commit-config.yaml"] if manager == "pre-commit" else []  # pre-commit wants it staged

    report = hooks.install(repo)
    assert (report.manager, report.synced) == (manager, True), report
    assert [(h.state, h.manager) for h in report.hooks] == [("managed", manager)] * 2
    head = git(repo, "rev-parse", "HEAD")
    refused = commit(repo, env, "bad = 1\n", *staged)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert git(repo, "rev-parse", "HEAD") == head, "the failing gate refused the commit"
    assert gate_log.read_text().splitlines() == ["bad = 1"]
    assert mark in user_log(repo), "the user's own hook ran too"
    accepted = commit(repo, env, "good = 1\n", *staged)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert git(repo, "log", "-1", "--format=%s").strip() == "good = 1"

    synced = run([tool(resync[0]), *resync[1:]], repo, env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert [h.state for h in hooks.status(repo)] == ["managed", "managed"]
    again = commit(repo, env, "bad = 2\n")
    assert again.returncode != 0 and gate_log.read_text().splitlines()[-1] == "bad = 2", "still gated"

    states = hooks.uninstall(repo)
    assert [s.state for s in states] == ["absent", "absent"]
    assert _snapshot(files) == before, "the user's files are byte for byte what they were"
    runs_before, user_runs = len(gate_log.read_text().splitlines()), user_log(repo).count(mark)
    git(repo, "add", "src/core/a.py", *staged)  # a.py says bad = 2 (refused above); pre-commit: the config back
    free = run(["git", "commit", "-q", "-m", "bad = 2"], repo, env)
    assert free.returncode == 0, free.stdout + free.stderr
    assert len(gate_log.read_text().splitlines()) == runs_before, "no gate ran"
    assert user_log(repo).count(mark) == user_runs + 1, "the user's hook still runs"


@pytest.mark.parametrize("manager", list(SETUPS))
def test_pre_push_hands_our_command_the_remote_and_gits_stdin(manager: str, repo: Path, env: dict[str, str], tmp_path: Path) -> None:
    """The contract with the run command: ``run --hook pre-push REMOTE URL``, git's ref lines on stdin."""
    setup, _, _ = SETUPS[manager]
    setup(repo, env)
    launcher, out = recording_launcher(tmp_path)
    remote = bare_remote(repo, tmp_path)
    hooks.install(repo, launcher=launcher)
    (repo / "src" / "core" / "a.py").write_text("A = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one", "--no-verify")
    first = git(repo, "rev-parse", "HEAD").strip()
    assert run(["git", "push", "-q", "origin", "main"], repo, env).returncode == 0
    (repo / "src" / "core" / "a.py").write_text("A = 3\n")
    git(repo, "commit", "-q", "-am", "two", "--no-verify")
    second = git(repo, "rev-parse", "HEAD").strip()
    pushed = run(["git", "push", "-q", "origin", "main"], repo, env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    pushes = [c for c in calls(out) if c.argv[:3] == ["run", "--hook", "pre-push"]]
    assert [c.argv for c in pushes] == [["run", "--hook", "pre-push", "origin", str(remote)]] * 2
    assert [c.stdin for c in pushes] == [
        f"refs/heads/main {first} refs/heads/main {hooks.ZERO_SHA}\n",
        f"refs/heads/main {second} refs/heads/main {first}\n",
    ]


@pytest.mark.parametrize("manager", [*SETUPS, "git"])
def test_a_push_whose_commit_fails_a_gate_is_refused_and_the_fixed_one_goes(
    manager: str, repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    gate_log = tmp_path / "gate.log"
    add_failing_gate(repo, gate_log, hook="pre-push")
    if manager != "git":
        SETUPS[manager][0](repo, env)
    bare_remote(repo, tmp_path)
    assert hooks.install(repo).manager == manager
    git(repo, "add", "-A")  # pre-commit's edited config goes in with the commit
    (repo / "src" / "core" / "a.py").write_text("bad = 1\n")
    git(repo, "commit", "-q", "-am", "bad", "--no-verify")
    refused = run(["git", "push", "-q", "origin", "main"], repo, env)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert git(repo, "ls-remote", "origin") == "", "nothing was pushed"
    assert gate_log.read_text().splitlines() == ["bad = 1"]
    (repo / "src" / "core" / "a.py").write_text("good = 1\n")
    git(repo, "commit", "-q", "-am", "good", "--no-verify")
    pushed = run(["git", "push", "-q", "origin", "main"], repo, env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert git(repo, "ls-remote", "origin", "main").split()[0] == git(repo, "rev-parse", "HEAD").strip()
    assert gate_log.read_text().splitlines()[-1] == "good = 1", "the pushed commit was tested"


# ------------------------------------------------------------------------------------ the status truth


def _status_cli(repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--repo", str(repo), "hooks", "status"])
    return code, capsys.readouterr().out


def test_lefthook_moving_our_hook_aside_is_reported_and_repaired(
    repo: Path, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate_log = tmp_path / "gate.log"
    add_failing_gate(repo, gate_log)
    assert hooks.install(repo).manager == "git"
    (repo / "lefthook.yml").write_text(LEFTHOOK_CONFIG)
    assert run([tool("lefthook"), "install"], repo, env).returncode == 0  # moves ours to pre-commit.old
    state = hooks.status(repo)[0]
    assert state.state == "inactive" and "pre-commit.old, which lefthook never runs" in state.detail
    code, out = _status_cli(repo, capsys)
    assert code == 1 and "inactive" in out
    assert commit(repo, env, "bad = 1\n").returncode == 0, "what the status warned about: no gate ran"
    assert not gate_log.exists()

    report = hooks.install(repo)
    assert report.manager == "lefthook" and [h.state for h in report.hooks] == ["managed", "managed"]
    assert not (repo / ".git" / "hooks" / "pre-commit.old").exists()
    assert _status_cli(repo, capsys)[0] == 0
    assert commit(repo, env, "bad = 2\n").returncode != 0
    assert gate_log.read_text().splitlines() == ["bad = 2"]


def test_pre_commit_installed_over_us_runs_us_as_legacy_and_uninstall_removes_that(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    gate_log = tmp_path / "gate.log"
    add_failing_gate(repo, gate_log)
    user_hook = repo / ".git" / "hooks" / "pre-commit"
    user_bytes = f"#!/bin/sh\n{USER_HOOK_LINE.format(who='plain-user')}\n".encode()
    user_hook.write_bytes(user_bytes)
    user_hook.chmod(0o755)
    assert [h.state for h in hooks.install(repo).hooks] == ["chained", "installed"]
    _pre_commit_setup(repo, env)  # the team adopts pre-commit: ours becomes pre-commit.legacy
    state = hooks.status(repo)[0]
    assert (state.state, state.manager) == ("legacy", "pre-commit")
    assert commit(repo, env, "bad = 1\n").returncode != 0
    assert gate_log.read_text().splitlines() == ["bad = 1"]
    assert {"plain-user", "pre-commit-user"} <= set(user_log(repo))

    states = hooks.uninstall(repo)
    assert states[0].state == "absent"
    legacy = repo / ".git" / "hooks" / "pre-commit.legacy"
    assert legacy.read_bytes() == user_bytes, "the user's hook is back where pre-commit runs it"
    assert not list((repo / ".git" / "hooks").glob(f"*{hooks.CHAINED_SUFFIX}"))
    log_before = user_log(repo)
    assert run(["git", "commit", "-q", "-m", "bad"], repo, env).returncode == 0
    assert gate_log.read_text().splitlines() == ["bad = 1"], "no gate ran"
    assert user_log(repo)[len(log_before):] == ["plain-user", "pre-commit-user"]


def test_a_hooks_path_elsewhere_bypasses_our_scripts(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks.install(repo)
    git(repo, "config", "core.hooksPath", "tools/githooks")
    assert [h.state for h in hooks.status(repo)] == ["bypassed", "bypassed"]
    code, out = _status_cli(repo, capsys)
    assert code == 1 and "core.hooksPath='tools/githooks'" in out
    hooks.uninstall(repo)
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert [h.state for h in hooks.status(repo)] == ["absent", "absent"]


def test_husky_without_its_hooks_path_is_inactive(repo: Path, env: dict[str, str]) -> None:
    _husky_setup(repo, env)
    hooks.install(repo)
    git(repo, "config", "--unset", "core.hooksPath")
    states = hooks.status(repo)
    assert [s.state for s in states] == ["inactive", "inactive"]
    assert "core.hooksPath is not husky's: run `husky`" in states[0].detail


def test_our_old_script_inside_husky_s_folder_gives_way_to_a_husky_line(repo: Path, env: dict[str, str]) -> None:
    """What earlier versions did with --hooks-path-ok (husky then ran our script instead of the user's)."""
    _husky_setup(repo, env)
    stub = repo / ".husky" / "_" / "pre-commit"
    original = stub.read_bytes()
    report = hooks.install(repo, manager="git", hooks_path_ok=True)
    assert hooks.script_kind(stub) == "ours" and report.hooks[0].state == "chained"
    report = hooks.install(repo)
    assert report.manager == "husky" and [h.state for h in report.hooks] == ["managed", "managed"]
    assert stub.read_bytes() == original, "husky's own stub is back"
    assert not list(stub.parent.glob(f"*{hooks.CHAINED_SUFFIX}"))


def test_a_manager_config_listing_us_without_its_hook_is_inactive(
    repo: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _pre_commit_setup(repo, env)  # installs pre-commit's pre-commit hook only
    capsys.readouterr()
    assert main(["--repo", str(repo), "hooks", "install", "--no-sync"]) == 0
    out = capsys.readouterr().out
    assert "hook manager: pre-commit (.git/hooks/pre-commit is pre-commit's hook)" in out.replace(str(repo) + "/", "")
    assert "now run: pre-commit install --hook-type pre-commit --hook-type pre-push\n" in out
    states = hooks.status(repo)
    assert [s.state for s in states] == ["managed", "inactive"]
    assert "run `pre-commit install --hook-type pre-push`" in states[1].detail
    assert _status_cli(repo, capsys)[0] == 1
    result = subprocess.run([str(tool("pre-commit")), "validate-config", ".pre-commit-config.yaml"], cwd=repo,
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lefthook_validates_and_dumps_our_jobs(repo: Path, env: dict[str, str]) -> None:
    _lefthook_setup(repo, env)
    hooks.install(repo)
    assert run([tool("lefthook"), "validate"], repo, env).returncode == 0
    dumped = run([tool("lefthook"), "dump"], repo, env)
    data = yaml.safe_load(dumped.stdout)
    assert [j["name"] for j in data["pre-commit"]["jobs"]] == [hooks.JOB_NAME, "team"]
    assert data["pre-push"]["jobs"][0]["use_stdin"] is True


def test_print_shows_the_snippet_and_changes_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "lefthook.yml").write_text(LEFTHOOK_CONFIG)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    assert main(["--repo", str(repo), "hooks", "install", "--print"]) == 0
    out = capsys.readouterr().out
    assert hooks.block_begin("pre-commit") in out and "use_stdin: true" in out
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    assert main(["--repo", str(repo), "hooks", "install", "--print", "--manager", "husky"]) == 0
    # the repository has no gates file of its own: the hooks name the one the orchestrator would use
    assert re.search(r'^\S+ run --hook pre-push --config \S+gates\.yaml "\$@"$', capsys.readouterr().out, re.M)
