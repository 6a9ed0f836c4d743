"""Scoring: the priority formula with explained terms, Taskwarrior urgency, WSJF, dependency awareness."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from bno_orchestrator.models import Task, TaskStatus
from bno_orchestrator.rules import ScoringConfig
from bno_orchestrator.scorers import SCORER_NAMES, ScorerName
from bno_orchestrator.scoring import SCORERS, explain_lines, rank, score_tasks
from tests.orchestrator.core_fixtures import START


def _terms(score: object) -> dict[str, tuple[float, str]]:
    return {t.name: (t.value, t.source) for t in score.terms}  # type: ignore[attr-defined]


def test_priority_formula_with_sources() -> None:
    task = Task(id="A", title="a", impact=5, urgency=4, resources=1)
    score = score_tasks([task], ScoringConfig(), now=START)["A"]
    terms = _terms(score)
    assert terms == {"impact": (5, "task"), "urgency": (4, "task"), "dependencies": (1, "derived"),
                     "resources": (1, "task"), "risk": (2, "default")}
    assert score.value == pytest.approx(5 * 4 * 1 / (1 * 2))
    text = "\n".join(explain_lines(task, score))
    assert "scoring.yaml default for risk" in text and "= score" in text and "10.000" in text


def test_ranges_are_validated() -> None:
    with pytest.raises(ValidationError):
        Task(id="A", title="a", impact=6)
    with pytest.raises(ValidationError):
        Task(id="A", title="a", dependencies=4)
    with pytest.raises(ValidationError):
        Task(id="A", title="a", risk=0)
    with pytest.raises(ValidationError):
        ScoringConfig.model_validate({"priority": {"defaults": {"impact": 9}}})


def test_old_seed_names_still_load() -> None:
    old = ScoringConfig.model_validate({"scorer": "seed", "seed": {"defaults": {"impact": 5},
                                                                   "dependencies_by_blocking": [1, 1, 2]}})
    assert old.scorer == ScorerName.PRIORITY
    assert old.priority.defaults.impact == 5 and old.priority.dependencies_by_blocking == (1, 1, 2)
    assert ScoringConfig.model_validate({"scorer": "seed"}) == ScoringConfig()
    task = Task(id="A", title="a")
    assert score_tasks([task], old, now=START)["A"].scorer == "priority"
    with pytest.raises(ValidationError, match="under 'priority'"):
        ScoringConfig.model_validate({"seed": {}, "priority": {}})
    with pytest.raises(ValidationError):
        ScoringConfig.model_validate({"seed": {"defaults": {"impact": 9}}})


def test_an_old_scoring_file_loads(tmp_path: Path) -> None:
    from bno_orchestrator.config import load_scoring

    path = tmp_path / "scoring.yaml"
    path.write_text("version: 1\nscorer: seed\nseed:\n  defaults: {impact: 4, urgency: 3, resources: 2, risk: 2}\n",
                    encoding="utf-8")
    config = load_scoring(path)
    assert config.scorer == ScorerName.PRIORITY and config.priority.defaults.impact == 4


def test_blocking_raises_and_blocked_sinks() -> None:
    base = Task(id="BASE", title="base", dependencies=1)
    alone = Task(id="ALONE", title="alone")
    tops = [Task(id=f"TOP{i}", title="top", impact=5, urgency=5, resources=1, depends_on=["BASE"]) for i in range(2)]
    scores = score_tasks([base, alone, *tops], ScoringConfig(), now=START)
    assert scores["BASE"].blocks == ("TOP0", "TOP1")
    deps = next(t for t in scores["BASE"].terms if t.name == "dependencies")
    assert deps.value == 3 and deps.source == "derived" and "raised" in deps.note
    assert scores["BASE"].value == pytest.approx(3 * scores["ALONE"].value)
    assert scores["TOP0"].blocked and scores["TOP0"].blocked_by == ("BASE",)
    # blocked tasks rank last even with the highest raw score
    assert scores["TOP0"].value > scores["BASE"].value
    assert rank(scores) == ["BASE", "ALONE", "TOP0", "TOP1"]
    done = base.model_copy(update={"status": TaskStatus.DONE})
    rescored = score_tasks([done, alone, *tops], ScoringConfig(), now=START)
    assert not rescored["TOP0"].blocked


def test_taskwarrior_urgency_terms() -> None:
    config = ScoringConfig.model_validate({"scorer": "taskwarrior",
                                           "taskwarrior": {"label_coefficients": {"hot": 2.5}}})
    old = Task(id="OLD", title="old", impact=5, labels=["hot"], created_at=START - dt.timedelta(days=365),
               due=START - dt.timedelta(days=10))
    dependent = Task(id="DEP", title="dep", depends_on=["OLD"], created_at=START)
    scores = score_tasks([old, dependent], config, now=START)
    terms = _terms(scores["OLD"])
    assert terms["priority"][0] == 6.0 and terms["age"][0] == pytest.approx(2.0)
    assert terms["blocking"][0] == 8.0 and terms["due"][0] == pytest.approx(12.0)
    assert terms["tags"][0] == pytest.approx(0.8) and terms["labels"][0] == 2.5
    assert scores["OLD"].value == pytest.approx(6 + 2 + 8 + 0.8 + 12 + 2.5)
    assert _terms(scores["DEP"])["blocked"][0] == -5.0
    soon = Task(id="SOON", title="s", due=START + dt.timedelta(days=7), created_at=START)
    due_term = _terms(score_tasks([soon], config, now=START)["SOON"])["due"][0]
    assert due_term == pytest.approx(12.0 * ((-7 + 14) * 0.8 / 21 + 0.2))


def test_wsjf_cost_of_delay_over_job_size() -> None:
    config = ScoringConfig(scorer="wsjf")
    explicit = Task(id="E", title="e", business_value=8, time_criticality=5, risk_reduction=3, job_size=2)
    derived = Task(id="D", title="d", impact=4, urgency=2, resources=4)
    waiting = Task(id="W", title="w", depends_on=["D"])
    scores = score_tasks([explicit, derived, waiting], config, now=START)
    assert scores["E"].value == pytest.approx((8 + 5 + 3) / 2)
    terms = _terms(scores["D"])
    assert terms["business_value"] == (4, "task") and terms["job_size"] == (4, "task")
    assert terms["risk_reduction"] == (5, "derived")  # it unblocks one task
    assert scores["D"].value == pytest.approx((4 + 2 + 5) / 4)


def test_scorer_is_chosen_in_config_or_per_call() -> None:
    task = Task(id="A", title="a")
    assert score_tasks([task], ScoringConfig(scorer="wsjf"), now=START)["A"].scorer == "wsjf"
    assert score_tasks([task], ScoringConfig(), now=START, scorer="taskwarrior")["A"].scorer == "taskwarrior"
    with pytest.raises(ValueError, match="unknown scorer 'magic'; known: priority, taskwarrior, wsjf"):
        score_tasks([task], ScoringConfig(), now=START, scorer="magic")


def test_one_registry_names_the_scorers_for_the_rule_file_and_the_command_line() -> None:
    from bno_orchestrator.cli import build_parser

    assert set(SCORERS) == set(ScorerName) and SCORER_NAMES == ("priority", "taskwarrior", "wsjf")
    task = Task(id="A", title="a")
    for name in SCORER_NAMES:
        config = ScoringConfig.model_validate({"scorer": name})
        assert config.scorer == name and score_tasks([task], config, now=START)["A"].scorer == name
    with pytest.raises(ValidationError, match="'priority', 'taskwarrior' or 'wsjf'"):
        ScoringConfig.model_validate({"scorer": "magic"})
    parser = build_parser()
    for argv in (["route"], ["task", "list"], ["task", "explain", "T-1"]):
        assert parser.parse_args([*argv, "--scorer", "wsjf"]).scorer == "wsjf"
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--scorer", "magic"])
