"""Playbooks on the test world's built warehouse: what fires, once, within the cooldown, in a dry run and under
the killswitch. The channels are a recorder here: these tests are about the decisions and the ledger, not the
transport (the channels' own tests send for real)."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from csops import settings
from csops.activation import playbooks
from csops.activation.digest import post_digest
from csops.activation.killswitch import check_and_stop
from csops.activation.playbooks import plan_firings, run_playbooks
from tests.conftest import create_database
from tests.dbt.warehouse import RUN_DATE, dbt


class Recorder:
    """Channels that record what would have gone out. Salesforce is a dict of the records it holds by firing
    key (`org`, shared between Recorders to stand for one org); `refuse` makes it reject records by firing key;
    `lose` makes it write records but lose its answer for them (the call died on the way back)."""

    def __init__(self, refuse: set[str] | None = None, lose: set[str] | None = None,
                 org: dict | None = None) -> None:
        self.upserts, self.emails, self.status_changes, self.digests, self.alerts = [], [], [], [], []
        self.refuse, self.lose = refuse or set(), lose or set()
        self.org = {} if org is None else org
        self.lookups = []

    def upsert(self, object_name, records):
        self.upserts += [(object_name, record) for record in records]
        answers = {}
        for record in records:
            key = record["Playbook_Firing_Key__c"]
            if key in self.refuse:
                answers[key] = (False, "FIELD_CUSTOM_VALIDATION_EXCEPTION: refused")
                continue
            self.org.setdefault(key, (object_name, f"{object_name[:3]}-{len(self.org)}", dict(record)))
            if key not in self.lose:
                answers[key] = (True, self.org[key][1])
        return answers

    def find(self, object_name, firing_keys):
        self.lookups.append((object_name, sorted(firing_keys)))
        return {key: self.org[key][1] for key in firing_keys if key in self.org and self.org[key][0] == object_name}

    def send_email(self, to, template_key, context, reply_to=None):
        self.emails.append((to, template_key, context))

    def post_status_changes(self, rows):
        self.status_changes.append(rows)

    def post_digest(self, digest):
        self.digests.append(digest)

    def post_alert(self, text):
        self.alerts.append(text)

    def sent_anything(self) -> bool:
        return bool(self.upserts or self.emails or self.status_changes or self.digests or self.alerts)


@pytest.fixture
def warehouse(postgres, built_template) -> str:
    """A private copy of the built test-world warehouse."""
    name, completed, _results = built_template
    assert completed.returncode == 0, completed.stdout[-4000:]
    return create_database(postgres, "activation", template=name)


@pytest.fixture
def dbt_target(tmp_path) -> Path:
    return tmp_path / "dbt-target"


def candidates(url: str) -> list[dict]:
    with psycopg.connect(url, row_factory=dict_row) as connection:
        return connection.execute("select * from activation.playbook_candidates order by firing_key").fetchall()


def ledger(url: str, where: str = "true", parameters=()) -> dict[str, dict]:
    with psycopg.connect(url, row_factory=dict_row) as connection:
        return {row["firing_key"]: row for row in connection.execute(
            f"select * from ops.playbook_firings where {where}", parameters).fetchall()}


def fire(url: str, senders: Recorder, run_date: date = RUN_DATE, dry_run: bool = False) -> dict:
    with psycopg.connect(url, autocommit=True) as connection:
        return run_playbooks(connection, senders, run_date, dry_run=dry_run, run_id="test")


def move_ledger(url: str, days_back: int, from_date: date = RUN_DATE) -> None:
    """Make the ledger's firings of `from_date` look as if they had been made `days_back` days before the run
    date; the run date's other rows go."""
    earlier = RUN_DATE - timedelta(days=days_back)
    with psycopg.connect(url) as connection:
        connection.execute("delete from ops.playbook_firings where run_date = %s and run_date <> %s",
                           (RUN_DATE, from_date))
        connection.execute("update ops.playbook_firings set run_date = %s, "
                           "firing_key = replace(firing_key, %s, %s) where run_date = %s",
                           (earlier, f"|{from_date}", f"|{earlier}", from_date))


def test_candidates_are_the_days_triggers_for_the_playbooks_audience(warehouse):
    rows = candidates(warehouse)
    with psycopg.connect(warehouse, row_factory=dict_row) as connection:
        health = {row["company_id"]: row for row in connection.execute(
            "select h.company_id, h.health_status, h.status_transition, c.touch_model from marts.fct_health_scores h "
            "join marts.dim_companies c using (company_id) where score_date = %s", (RUN_DATE,)).fetchall()}
        signals = connection.execute("select company_id, signal_key from marts.fct_company_signals").fetchall()
    by_playbook = Counter(row["playbook_key"] for row in rows)
    assert {row["run_date"] for row in rows} == {RUN_DATE}
    assert {row["company_id"] for row in rows} <= set(health), "only companies scored on the run date"
    red = {company for company, row in health.items() if row["health_status"] == "Red"}
    assert red and {row["company_id"] for row in rows if row["playbook_key"] == "red_urgent_task"} == red
    changed = {company for company, row in health.items() if row["status_transition"]}
    assert {row["company_id"] for row in rows if row["playbook_key"] == "status_change_slack"} == changed
    entered_yellow = {c for c, row in health.items() if (row["status_transition"] or "").endswith("→Yellow")}
    assert {row["company_id"] for row in rows if row["playbook_key"] == "yellow_check_in_task"} == entered_yellow
    for signal_key, playbook_key, touch_models in (
            ("nps_promoter", "nps_promoter_referral", None),
            ("key_person_lost", "key_person_lost_task", None),
            ("usage_near_plan_limit", "usage_near_plan_limit_opportunity", {"high_touch", "low_touch"}),
            ("onboarding_stalled", "onboarding_step_2", {"tech_touch", "low_touch"})):
        expected = {signal["company_id"] for signal in signals if signal["signal_key"] == signal_key
                    and (touch_models is None or health[signal["company_id"]]["touch_model"] in touch_models)}
        assert by_playbook[playbook_key] == len(expected), playbook_key
    task = next(row for row in rows if row["playbook_key"] == "red_urgent_task")
    assert (task["action"], task["priority"], task["due_date"]) == ("salesforce_task", "High", RUN_DATE + timedelta(1))
    assert task["firing_key"] == f"{task['company_id']}|red_urgent_task|{RUN_DATE}"
    emails = [row for row in rows if row["action"] == "email"]
    assert emails and all(row["contact_email"] and row["email_template"] for row in emails)


def test_a_company_without_a_key_contact_is_skipped_with_the_reason(warehouse, dbt_target):
    promoter = next(row for row in candidates(warehouse) if row["playbook_key"] == "nps_promoter_referral")
    with psycopg.connect(warehouse) as connection:  # the key persons' e-mail addresses are gone in Salesforce
        connection.execute("update raw_salesforce.contact set email = null where accountid = %s",
                           (promoter["account_id"],))
    completed = dbt(warehouse, dbt_target, "run", "--select", "playbook_candidates")
    assert completed.returncode == 0, completed.stdout[-3000:]
    [row] = [row for row in candidates(warehouse) if row["firing_key"] == promoter["firing_key"]]
    assert row["missing_recipient"] == "the company has no active key-person contact with an e-mail address"
    senders = Recorder()
    fire(warehouse, senders)
    assert ledger(warehouse)[row["firing_key"]]["outcome"] == "skipped_no_recipient"
    assert promoter["contact_email"] not in {to for to, _template, _context in senders.emails}


def test_every_candidate_fires_once_and_a_rerun_of_the_date_fires_nothing_new(warehouse):
    rows = candidates(warehouse)
    senders = Recorder()
    counts = fire(warehouse, senders)
    fired = ledger(warehouse)
    onboarding = [row for row in rows if row["sequence_key"] == "onboarding"]
    singles = [row for row in rows if not row["sequence_key"]]
    assert onboarding and all(fired[row["firing_key"]]["outcome"] in ("created", "sent") for row in singles)
    steps = {fired[row["firing_key"]]["playbook_key"] for row in onboarding if row["firing_key"] in fired}
    assert steps == {"onboarding_step_1"}, "a stalled company starts the sequence at step 1"
    tasks = [record for object_name, record in senders.upserts if object_name == "Task"]
    red = next(record for record in tasks if "red_urgent_task" in record["Playbook_Firing_Key__c"])
    red_row = next(row for row in rows if row["firing_key"] == red["Playbook_Firing_Key__c"])
    assert (red["WhatId"], red["OwnerId"], red["Priority"], red["ActivityDate"]) == (
        red_row["account_id"], red_row["csm_user_id"], "High", (RUN_DATE + timedelta(1)).isoformat())
    assert len(tasks) == sum(row["action"] == "salesforce_task" for row in rows)
    assert {to for to, _template, _context in senders.emails} <= {row["contact_email"] for row in rows}
    assert counts["created"] == len(senders.upserts)
    assert counts["sent"] == len(senders.emails) + sum(len(rows) for rows in senders.status_changes)

    again = Recorder()
    counts = fire(warehouse, again)
    assert not again.sent_anything(), "re-running the date fires nothing new"
    assert counts == {"already_fired": len(fired)}
    assert ledger(warehouse) == fired, "and leaves the ledger as it was"


def test_the_cooldown_holds_and_the_next_onboarding_step_waits_for_its_turn(warehouse):
    fire(warehouse, Recorder())
    move_ledger(warehouse, 5)  # as if everything had fired five days ago
    senders = Recorder()
    fire(warehouse, senders)
    today = ledger(warehouse, "run_date = %s", (RUN_DATE,))
    red = next(row for key, row in today.items() if "|red_urgent_task|" in key)
    assert red["outcome"] == "skipped_cooldown"
    assert red["detail"] == (f"fired on {RUN_DATE - timedelta(5)}; the cooldown of 14 days lets it fire again "
                             f"from {RUN_DATE + timedelta(9)}")
    slack = [row for key, row in today.items() if "|status_change_slack|" in key]
    assert all(row["outcome"] == "sent" for row in slack), "a cooldown of 0 days: once per date"
    step_2 = [row for key, row in today.items() if "|onboarding_step_2|" in key]
    assert step_2 and all(row["outcome"] == "skipped_cooldown" and f"follows from {RUN_DATE + timedelta(2)}"
                          in row["detail"] for row in step_2)
    assert not senders.upserts and not senders.emails

    move_ledger(warehouse, 8, from_date=RUN_DATE - timedelta(5))  # fired eight days ago: step 2 is due now
    senders = Recorder()
    fire(warehouse, senders)
    today = ledger(warehouse, "run_date = %s", (RUN_DATE,))
    # A company stalled since before step 1 went out gets step 2; one whose stall started after it gets step 1.
    stalled = {row["company_id"]: row["trigger_started_on"] for row in candidates(warehouse)
               if row["playbook_key"] == "onboarding_step_1"}
    sent = {(row["company_id"], row["playbook_key"]) for row in today.values() if row["outcome"] == "sent"
            and row["playbook_key"].startswith("onboarding")}
    assert sent == {(company, "onboarding_step_2" if started <= RUN_DATE - timedelta(8) else "onboarding_step_1")
                    for company, started in stalled.items()}
    assert any(step == "onboarding_step_2" for _company, step in sent)
    assert next(row for key, row in today.items() if "|red_urgent_task|" in key)["outcome"] == "skipped_cooldown"


def test_a_dry_run_sends_nothing_and_records_everything(warehouse):
    senders = Recorder()
    counts = fire(warehouse, senders, dry_run=True)
    assert not senders.sent_anything()
    recorded = ledger(warehouse)
    plan_size = sum(row["sequence_key"] is None or row["playbook_key"] == "onboarding_step_1"
                    for row in candidates(warehouse))
    assert len(recorded) == plan_size == counts["dry_run"]
    assert {row["outcome"] for row in recorded.values()} == {"dry_run"}
    with psycopg.connect(warehouse, autocommit=True) as connection:
        assert post_digest(connection, senders, RUN_DATE, dry_run=True, run_id="test") == "dry_run"
    assert not senders.digests
    live = Recorder()
    counts = fire(warehouse, live)
    assert counts["created"] + counts["sent"] == plan_size, "a dry run blocks nothing: the real run sends it all"


def test_a_refused_firing_is_recorded_failed_and_sent_on_a_rerun(warehouse):
    task = next(row for row in candidates(warehouse) if row["action"] == "salesforce_task")
    fire(warehouse, Recorder(refuse={task["firing_key"]}))
    failed = ledger(warehouse)[task["firing_key"]]
    assert failed["outcome"] == "failed" and "FIELD_CUSTOM_VALIDATION_EXCEPTION" in failed["detail"]
    senders = Recorder()
    fire(warehouse, senders)
    assert [record["Playbook_Firing_Key__c"] for _object, record in senders.upserts] == [task["firing_key"]]
    assert ledger(warehouse)[task["firing_key"]]["outcome"] == "created"
    assert ledger(warehouse)[task["firing_key"]]["attempts"] == 2


def verdict_before(url: str, decision: str, days_back: int = 1) -> None:
    """As if the activation had decided `decision` for a date `days_back` before the run date."""
    from csops.activation.killswitch import ensure_verdicts

    with psycopg.connect(url, autocommit=True) as connection:
        ensure_verdicts(connection)
        connection.execute("insert into ops.killswitch_verdicts (run_date, decision, reasons, inputs) values "
                           "(%s, %s, '[]', '{}')", (RUN_DATE - timedelta(days_back), decision))


def killswitch(url: str, senders: Recorder, max_share: float = 1.0, dry_run: bool = False):
    with psycopg.connect(url, autocommit=True) as connection:
        return check_and_stop(connection, senders, RUN_DATE, dry_run=dry_run, max_share=max_share, run_id="test")


def test_sound_inputs_pass_the_killswitch(warehouse):
    senders = Recorder()
    verdict = killswitch(warehouse, senders, max_share=settings.activation_max_firing_share())
    assert verdict.reasons == [] and not verdict.tripped and not senders.sent_anything()
    assert verdict.inputs["first_activation"] and verdict.inputs["firing_share"] > 0.3, \
        "the first activation fires every standing condition at once; the share is not checked then"


def test_the_killswitch_trips_on_a_stale_source_stops_everything_and_alerts_once(warehouse):
    with psycopg.connect(warehouse) as connection:  # the Account load last succeeded on the run date's morning
        connection.execute("update ops.extract_runs set finished_at = '2026-11-20 06:40+09' "
                           "where source_name = 'salesforce' and table_name = 'account'")
    senders = Recorder()
    verdict = killswitch(warehouse, senders)
    assert verdict.tripped
    assert verdict.reason_texts("en") == ["stale source: salesforce.account last loaded 2026-11-20 06:40 Tokyo "
                                          "time, before 2026-11-20 ended"]
    stopped = ledger(warehouse, "company_id is not null")
    assert stopped and {row["outcome"] for row in stopped.values()} == {"stopped"}
    assert all("salesforce.account" in row["detail"] for row in stopped.values())
    [alert] = senders.alerts
    # In Japanese, the default, frame and reasons alike.
    assert alert.startswith("2026-11-20 分のアクティベーションを停止しました")
    assert "古いソース: salesforce.account" in alert
    assert "stale" not in alert and "firing(s)" not in alert
    [(to, template, context)] = senders.emails
    assert (to, template) == (settings.activation_ops_email(), "killswitch_alert")
    assert context["companies"] == len({row["company_id"] for row in stopped.values()})
    assert context["held_firings"] == len(stopped) and context["reasons"] == verdict.reason_texts("ja")
    assert not senders.upserts and not senders.status_changes

    again = Recorder()
    assert killswitch(warehouse, again).tripped
    assert not again.sent_anything(), "the ops team is alerted once per date"
    with psycopg.connect(warehouse) as connection:  # the load ran again after the day ended
        connection.execute("update ops.extract_runs set finished_at = now()")
    assert not killswitch(warehouse, Recorder()).tripped
    senders = Recorder()
    counts = fire(warehouse, senders)
    assert counts["created"] + counts["sent"] == len(stopped), "what was stopped fires once the inputs are sound"


def test_the_killswitch_trips_on_a_mass_firing_and_on_a_failed_dbt_test(warehouse):
    verdict_before(warehouse, "passed", days_back=2)
    with psycopg.connect(warehouse, autocommit=True) as connection:
        plan = plan_firings(connection, RUN_DATE)
    firing = plan.companies_firing()
    sudden = {c["company_id"] for c in plan.to_fire if c["trigger_started_on"] == RUN_DATE}
    assert sudden < firing, "the test world has standing conditions (Red for weeks) beside sudden changes"
    share = len(firing) / plan.companies_scored
    assert not killswitch(warehouse, Recorder(), max_share=share).tripped
    senders = Recorder()
    verdict = killswitch(warehouse, senders, max_share=share - 0.01, dry_run=True)
    assert verdict.reason_texts("en") == [f"mass firing: {len(firing)} of {plan.companies_scored} companies "
                                          f"({share:.0%}) would get a playbook on {RUN_DATE}, above the limit of "
                                          f"{share - 0.01:.0%} (CS_ACTIVATION_MAX_FIRING_SHARE)"], \
        "standing conditions count"
    assert not senders.sent_anything(), "a dry run alerts no one"
    alerts = ledger(warehouse, "playbook_key like 'killswitch_alert%%'")
    assert {row["outcome"] for row in alerts.values()} == {"dry_run"} and len(alerts) == 2

    with psycopg.connect(warehouse) as connection:
        connection.execute(
            "insert into ops.dbt_node_results (invocation_id, airflow_run_id, run_date, unique_id, resource_type, "
            "node_name, status, failures, message, recorded_at) values ('later', 'dbt-test', %s, "
            "'test.csops.not_null_fct_health_scores_company_id', 'test', 'not_null_fct_health_scores_company_id', "
            "'fail', 3, 'Got 3 results, configured to fail if != 0', now())", (RUN_DATE,))
    verdict = killswitch(warehouse, Recorder())
    assert verdict.reason_texts("en") == ["1 dbt model or test failed in cs_daily run dbt-test: "
                                          "test not_null_fct_health_scores_company_id"]


def test_candidates_built_for_another_date_are_refused(warehouse):
    with psycopg.connect(warehouse, autocommit=True) as connection, pytest.raises(
            playbooks.CandidatesError, match="run cs_daily for 2026-11-21 first"):
        plan_firings(connection, RUN_DATE + timedelta(1))


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_seed_validation_fails_on_a_bad_row_naming_it_and_the_fix(warehouse, tmp_path, monkeypatch, dbt_target):
    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.dbt_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    monkeypatch.setenv("CS_DBT_PROJECT_DIR", str(copy))
    seed = copy / "seeds" / "activation" / "playbooks.csv"
    rows = read_csv(seed)
    good = rows[0]
    rows += [
        {**good, "playbook_key": "typo_trigger", "trigger_type": "signal", "trigger_value": "usage_nearly_full"},
        {**good, "playbook_key": "typo_action", "action": "sms"},
        {**good, "playbook_key": "no_template", "action": "email", "email_template": "welcome"},
        {**good, "playbook_key": "negative_cooldown", "cooldown_days": "-1"},
        {**good},  # the first row again: a duplicate key
    ]
    with seed.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(good))
        writer.writeheader()
        writer.writerows(rows)
    completed = dbt(warehouse, dbt_target, "build", "--select", "path:seeds/activation", "path:tests/activation")
    assert completed.returncode != 0 and "assert_playbooks_are_valid" in completed.stdout
    compiled = next(dbt_target.glob("compiled/csops/tests/activation/assert_playbooks_are_valid.sql")).read_text()
    with psycopg.connect(warehouse) as connection:
        problems = sorted(connection.execute(f"select problem from ({compiled}) as failures").fetchall())
    assert [problem for (problem,) in problems] == sorted([
        "playbooks.csv: playbook negative_cooldown: cooldown_days -1 must be 0 or more (0: at most once per run date)",
        "playbooks.csv: playbook no_template: email_template welcome is not a template of email_templates.csv; "
        "use one of: killswitch_alert, onboarding_step_1, onboarding_step_2, onboarding_step_3, referral_ask",
        f"playbooks.csv: playbook {good['playbook_key']}: playbook_key {good['playbook_key']} appears 2 times; "
        "keys must be unique",
        "playbooks.csv: playbook typo_action: action sms is not one of salesforce_task, opportunity_draft, email, "
        "slack",
        "playbooks.csv: playbook typo_trigger: trigger_value usage_nearly_full is not a signal; use one of: "
        "feature_heavy_use, key_person_lost, nps_promoter, onboarding_stalled, outcome_goal_achieved, "
        "renewal_soon_not_green, usage_drop, usage_near_plan_limit",
    ])


def test_the_shipped_seed_passes_its_validation(warehouse, dbt_target):
    completed = dbt(warehouse, dbt_target, "build", "--select", "path:seeds/activation", "path:tests/activation")
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_the_summary_shows_what_was_created_sent_skipped_and_stopped(warehouse):
    from csops.summary import activation_summary, format_activation_summary

    rows = candidates(warehouse)
    with psycopg.connect(warehouse, autocommit=True) as connection:
        run_playbooks(connection, Recorder(refuse={rows[0]["firing_key"]}), RUN_DATE, dry_run=False, run_id="first")
    verdict = {"run_date": RUN_DATE.isoformat(), "reasons": [], "overridden": False, "tripped": False}
    write_back = {"api_calls": 3, "stopped": None, "objects": [
        {"object": "Account", "changed": 16, "accepted": 15, "rejected": 1}]}
    text = format_activation_summary(activation_summary(warehouse, "first", RUN_DATE, verdict=verdict,
                                                        write_back=write_back))
    fired = ledger(warehouse)
    tasks = sum(row["action"] == "salesforce_task" and row["outcome"] == "created" for row in fired.values())
    emails = sum(row["action"] == "email" and row["outcome"] == "sent" for row in fired.values())
    assert "Killswitch: inputs sound" in text
    assert "Written back to Salesforce: 15 rows accepted, 1 rejected, of 16 changed (3 API calls)" in text
    assert f"Salesforce tasks {tasks:,} created" in text and f"e-mails {emails:,} sent" in text
    assert f"1 FAILED (a re-run tries again):\n    {rows[0]['playbook_key']} {rows[0]['company_id']}: " in text

    with psycopg.connect(warehouse, autocommit=True) as connection:
        run_playbooks(connection, Recorder(), RUN_DATE, dry_run=False, run_id="second")
    text = format_activation_summary(activation_summary(warehouse, "second", RUN_DATE, verdict=verdict))
    from csops.summary import ACTIVATION_ACTIONS

    first = rows[0]
    outcome = "created" if first["action"] in ("salesforce_task", "opportunity_draft") else "sent"
    before = sum(row["outcome"] in ("sent", "created") for row in fired.values())
    assert (f"Playbooks: {ACTIVATION_ACTIONS[first['action']]} 1 {outcome} ({before} fired for this date by an "
            f"earlier run)") in text
    tripped = {**verdict, "reasons": ["stale source: board.invoices never loaded successfully"], "tripped": True}
    text = format_activation_summary(activation_summary(warehouse, "third", RUN_DATE, verdict=tripped))
    assert ("STOPPED by the killswitch: nothing was written back or fired. Why: stale source: board.invoices "
            "never loaded successfully") in text


# --- at most once, whatever dies when -------------------------------------------------------------------


class Dies(BaseException):
    """The process dying in the middle of a send (a BaseException: no `except Exception` records it)."""


class DyingRecorder(Recorder):
    """Sends `survive` e-mails, then dies inside the next send, after the message went out."""

    def __init__(self, survive: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.survive = survive

    def send_email(self, to, template_key, context, reply_to=None):
        super().send_email(to, template_key, context, reply_to)
        if len(self.emails) > self.survive:
            raise Dies


def test_a_run_that_dies_mid_send_leaves_unknown_and_its_retry_sends_nothing_twice(warehouse):
    org = {}
    dying = DyingRecorder(survive=1, org=org)
    with pytest.raises(Dies):
        fire(warehouse, dying)
    assert len(dying.emails) == 2 and dying.upserts, "the Tasks, one e-mail and a second went out before it died"
    died_on = dying.emails[-1]
    claimed = {key for key, row in ledger(warehouse).items() if row["outcome"] == "claimed"}
    assert claimed, "the firings it claimed and never finished are still claimed"

    retry = Recorder(org=org)  # the task's retry, or a second `csops run` of the date
    counts = fire(warehouse, retry)
    after = ledger(warehouse)
    assert not any(email[:2] == died_on[:2] for email in retry.emails), "the e-mail it died in is not re-sent"
    assert not {to for to, *_ in retry.emails} & {to for to, *_ in dying.emails[:1]}, "nor the one before it"
    [unknown] = [key for key, row in after.items() if row["outcome"] == "unknown"]
    assert after[unknown]["target"] == died_on[0] and "stopped before recording" in after[unknown]["detail"]
    assert counts["unknown"] == 1
    assert not retry.upserts, "the Tasks it created were recorded created: none is sent again"
    assert all(row["outcome"] in ("sent", "created", "unknown", "skipped_no_recipient") for row in after.values()
               if row["company_id"])
    emailed = Counter(to for to, *_ in dying.emails + retry.emails)
    assert max(emailed.values()) == 1, "no one got an e-mail twice"


def test_salesforce_firings_whose_answer_was_lost_are_looked_up_not_sent_again(warehouse):
    tasks = [row["firing_key"] for row in candidates(warehouse) if row["action"] == "salesforce_task"]
    assert len(tasks) >= 4
    org = {}
    lost, refused = set(tasks[len(tasks) // 2:]), {tasks[0]}  # the second half's answer never came back
    fire(warehouse, Recorder(lose=lost, refuse=refused, org=org))
    first = ledger(warehouse)
    assert {first[key]["outcome"] for key in lost} == {"unknown"}, "no answer: unknown, not failed"
    assert first[tasks[0]]["outcome"] == "failed" and "FIELD_CUSTOM_VALIDATION" in first[tasks[0]]["detail"]
    assert {first[key]["outcome"] for key in set(tasks[1:]) - lost} == {"created"}, "answered: created"

    org[sorted(lost)[0]][2]["Status"] = "In Progress"  # a CSM works one of the Tasks that were written
    rerun = Recorder(org=org)
    fire(warehouse, rerun)
    after = ledger(warehouse)
    assert ("Task", sorted(lost)) in rerun.lookups, "the unknown ones are looked up by their firing key"
    assert {after[key]["outcome"] for key in tasks} == {"created"}
    assert [record["Playbook_Firing_Key__c"] for _object, record in rerun.upserts] == [tasks[0]], \
        "only the refused Task is sent again; a found one is never upserted (its Status stays the CSM's)"
    assert org[sorted(lost)[0]][2]["Status"] == "In Progress"
    assert all(after[key]["detail"].startswith("Task ") for key in lost)


def test_a_record_written_but_missing_from_the_org_is_sent_again_after_the_lookup(warehouse):
    task = next(row["firing_key"] for row in candidates(warehouse) if row["action"] == "salesforce_task")
    org = {}
    fire(warehouse, Recorder(lose={task}, org=org))
    del org[task]  # the call that was lost never reached Salesforce after all
    rerun = Recorder(org=org)
    fire(warehouse, rerun)
    assert [record["Playbook_Firing_Key__c"] for _object, record in rerun.upserts] == [task]
    assert ledger(warehouse)[task]["outcome"] == "created"


def test_two_activations_of_a_date_at_once_the_second_is_refused(warehouse):
    from csops.activation.ledger import ActivationBusy, activation_lock

    with psycopg.connect(warehouse, autocommit=True) as holder, activation_lock(holder, RUN_DATE, "the first"):
        senders = Recorder()
        with pytest.raises(ActivationBusy, match=f"playbooks for {RUN_DATE} refused: another activation of "
                                                 f"{RUN_DATE} is running"):
            fire(warehouse, senders)
        with psycopg.connect(warehouse, autocommit=True) as connection, pytest.raises(ActivationBusy):
            check_and_stop(connection, senders, RUN_DATE, dry_run=False, max_share=1.0)
        assert not senders.sent_anything() and not ledger(warehouse)
    assert fire(warehouse, Recorder())["created"], "once the first is done, the date can run"


def test_an_unknown_email_is_listed_and_sent_again_only_on_request(warehouse):
    from csops.activation.day import resend

    dying = DyingRecorder(survive=0)
    with pytest.raises(Dies):
        fire(warehouse, dying)
    fire(warehouse, Recorder())
    [key] = [key for key, row in ledger(warehouse).items() if row["outcome"] == "unknown"]
    again = Recorder()
    fire(warehouse, again)
    assert not again.emails, "an unknown e-mail is never sent by itself"
    with psycopg.connect(warehouse, autocommit=True) as connection:
        with pytest.raises(ValueError, match="not unknown"):
            resend(connection, Recorder(), [next(k for k, r in ledger(warehouse).items() if r["outcome"] == "sent")],
                   "resend")
        person = Recorder()
        [firing] = resend(connection, person, [key], "resend")
    assert firing.outcome == "sent" and [to for to, *_ in person.emails] == [dying.emails[0][0]]
    assert ledger(warehouse)[key]["outcome"] == "sent"


class DiesPosting(Recorder):
    """Posts to Slack (the alert, the digest), then dies before the outcome is recorded."""

    def post_alert(self, text):
        super().post_alert(text)
        raise Dies

    def post_digest(self, digest):
        super().post_digest(digest)
        raise Dies


def test_an_unknown_alert_and_digest_are_sent_again_only_on_request_in_the_chosen_language(warehouse, monkeypatch):
    from csops.activation.day import resend
    from csops.activation.ledger import mark_unknown

    with psycopg.connect(warehouse) as connection:  # the Account load last succeeded on the run date's morning
        connection.execute("update ops.extract_runs set finished_at = '2026-11-20 06:40+09' "
                           "where source_name = 'salesforce' and table_name = 'account'")
    dying = DiesPosting()
    with pytest.raises(Dies):
        killswitch(warehouse, dying)
    with psycopg.connect(warehouse, autocommit=True) as connection:
        assert mark_unknown(connection, RUN_DATE) == 2, "the Slack alert died mid-post, the e-mail never started"
        with pytest.raises(Dies):
            post_digest(connection, DiesPosting(), RUN_DATE, dry_run=False, run_id="digest")
        mark_unknown(connection, RUN_DATE)
    unknown = sorted(key for key, row in ledger(warehouse).items() if row["outcome"] == "unknown")
    assert unknown == [f"daily_digest|{RUN_DATE}", f"killswitch_alert_slack|{RUN_DATE}",
                       f"killswitch_alert|{RUN_DATE}"]
    again = Recorder()
    killswitch(warehouse, again)
    assert not again.alerts and not again.emails, "an unknown alert is never sent by itself"

    monkeypatch.setenv("CS_ACTIVATION_LANGUAGE", "en")
    person = Recorder()
    with psycopg.connect(warehouse, autocommit=True) as connection:
        firings = resend(connection, person, unknown, "resend")
        assert {firing.outcome for firing in firings} == {"sent"} and len(firings) == 3
        with pytest.raises(ValueError, match="not unknown"):
            resend(connection, Recorder(), unknown[:1], "resend")
    [alert] = person.alerts
    assert alert.startswith(f"Activation stopped for {RUN_DATE}") and "stale source: salesforce.account" in alert
    [(_, template, context)] = person.emails
    assert template == "killswitch_alert" and context["reasons"][0].startswith("stale source: salesforce.account")
    assert len(person.digests) == 1 and person.digests[0]["language"] == "en"
    assert {ledger(warehouse)[key]["outcome"] for key in unknown} == {"sent"}


# --- the killswitch holds until someone decides, and the past never fires ------------------------------


def verdicts(url: str) -> list[dict]:
    with psycopg.connect(url, row_factory=dict_row) as connection:
        return connection.execute("select * from ops.killswitch_verdicts order by verdict_id").fetchall()


def test_the_killswitch_holds_the_next_day_until_the_data_recovers_or_someone_overrides(warehouse):
    verdict_before(warehouse, "passed", days_back=2)
    verdict_before(warehouse, "tripped")  # the day before tripped on a mass firing: most companies turned Red
    with psycopg.connect(warehouse, autocommit=True) as connection:
        plan = plan_firings(connection, RUN_DATE)
    share = len(plan.companies_firing()) / plan.companies_scored
    senders = Recorder()
    held = killswitch(warehouse, senders, max_share=share - 0.01)  # the same companies, still firing
    assert held.decision == "still_tripped" and held.tripped
    assert held.inputs["previous"] == {"run_date": (RUN_DATE - timedelta(1)).isoformat(), "decision": "tripped"}
    assert held.inputs["companies_firing"] == len(plan.companies_firing())
    assert not senders.upserts and not senders.status_changes
    assert {row["outcome"] for row in ledger(warehouse, "company_id is not null").values()} == {"stopped"}

    overridden = Recorder()
    with psycopg.connect(warehouse, autocommit=True) as connection:
        verdict = check_and_stop(connection, overridden, RUN_DATE, dry_run=False, max_share=share - 0.01,
                                 run_id="override", override_by="ops@example.com")
    assert verdict.decision == "overridden" and not verdict.tripped and verdict.reasons
    last = verdicts(warehouse)[-1]
    assert (last["decision"], last["overridden_by"], last["airflow_run_id"]) == ("overridden", "ops@example.com",
                                                                                  "override")
    assert last["inputs"]["firing_share"] == round(share, 4)

    recovered = killswitch(warehouse, Recorder(), max_share=share)  # the data is back to normal
    assert recovered.decision == "recovered" and not recovered.tripped
    assert [row["decision"] for row in verdicts(warehouse)] == ["passed", "tripped", "still_tripped", "overridden",
                                                                 "recovered"]


def test_a_past_date_or_a_backfill_fires_nothing(warehouse):
    verdict_before(warehouse, "passed", days_back=-1)  # a later date was activated already
    senders = Recorder()
    verdict = killswitch(warehouse, senders)
    assert verdict.decision == "backfill" and verdict.tripped
    assert f"{RUN_DATE} is older than {RUN_DATE + timedelta(1)}" in verdict.reason_texts("en")[0]
    recorded = ledger(warehouse, "company_id is not null")
    assert recorded and {row["outcome"] for row in recorded.values()} == {"skipped_backfill"}
    assert not senders.sent_anything(), "no alert either: a backfill is not a fault"

    with psycopg.connect(warehouse, autocommit=True) as connection:
        connection.execute("delete from ops.killswitch_verdicts")
        verdict = check_and_stop(connection, senders, RUN_DATE, dry_run=False, max_share=1.0, backfill=True)
    assert verdict.decision == "backfill" and "started by a backfill of cs_daily" in verdict.reason_texts("en")[0]
    assert not senders.sent_anything()
    with psycopg.connect(warehouse, autocommit=True) as connection:
        connection.execute("delete from ops.killswitch_verdicts where decision = 'backfill'")
    assert not killswitch(warehouse, Recorder()).tripped, "the latest date itself can be run again"
