"""What one pipeline run did, read back from the warehouse's ops tables (and Airflow's task states).

The summary leads with what failed — the task, the table or model, the error — then the loads, the
rejected files, stale sources and the dbt results. The `summarize` task stores it in `ops.run_summaries`
so `csops run` (and anyone later) can print the same account of the run.
"""

from __future__ import annotations

import json
from datetime import date

import psycopg
from psycopg.rows import dict_row, tuple_row

from csops.rubric import format_rubric_change, rubric_change

MODEL_TYPES = ("model", "seed", "snapshot")
TEST_TYPES = ("test", "unit_test")
FAILED_TASK_STATES = ("failed",)
NOT_RUN_TASK_STATES = ("upstream_failed",)
FAILED_NODE_STATUSES = ("error", "fail", "runtime error")
HEALTH_STATUSES = ("Green", "Yellow", "Red")
# The Airflow task that loads each source's tables.
LOAD_TASKS = {"nexpro": "nexpro_extract.load_table", "salesforce": "salesforce_extract.load_object",
              "board": "board_extract.load_resource"}

SUMMARIES_DDL = """
create schema if not exists ops;
create table if not exists ops.run_summaries (
    run_id      text primary key,
    summary     jsonb not null,
    text        text not null,
    created_at  timestamptz not null default now()
)
"""


def table_exists(connection: psycopg.Connection, name: str) -> bool:
    """Whether the warehouse has `name` (schema.table) yet: a first run may fail before creating it."""
    return connection.cursor(row_factory=tuple_row).execute("select to_regclass(%s)", (name,)).fetchone()[0] is not None


def percent(rate) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def latest_run_id(warehouse_url: str) -> str | None:
    """The run that last wrote to the ops tables: its summary, or else its loads."""
    with psycopg.connect(warehouse_url) as connection:
        candidates = []
        if table_exists(connection, "ops.run_summaries"):
            candidates.append("select run_id, created_at as at from ops.run_summaries")
        if table_exists(connection, "ops.extract_runs"):
            candidates.append("select run_id, started_at as at from ops.extract_runs")
        if not candidates:
            return None
        row = connection.execute(f"select run_id from ({' union all '.join(candidates)}) as runs "
                                 "order by at desc limit 1").fetchone()
    return row[0] if row else None


def stored_summary(warehouse_url: str, run_id: str) -> str | None:
    """The summary text the run's `summarize` task stored, if it got that far."""
    with psycopg.connect(warehouse_url) as connection:
        if not table_exists(connection, "ops.run_summaries"):
            return None
        row = connection.execute("select text from ops.run_summaries where run_id = %s", (run_id,)).fetchone()
    return row[0] if row else None


def store_summary(warehouse_url: str, run_id: str, summary: dict, text: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as connection, connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('csops.ops_schema'))")
        connection.execute(SUMMARIES_DDL)
        connection.execute(
            "insert into ops.run_summaries (run_id, summary, text) values (%s, %s, %s) "
            "on conflict (run_id) do update set summary = excluded.summary, text = excluded.text, "
            "created_at = now()", (run_id, json.dumps(summary, default=str), text))


def dbt_results(connection: psycopg.Connection, run_id: str) -> list[dict]:
    """Each dbt node's latest result in the run: a model or test retried on its own counts as its retry."""
    if not table_exists(connection, "ops.dbt_node_results"):
        return []
    columns = {name for (name,) in connection.cursor(row_factory=tuple_row).execute(
        "select column_name from information_schema.columns where table_schema = 'ops' "
        "and table_name = 'dbt_node_results'").fetchall()}
    return connection.cursor(row_factory=dict_row).execute(
        f"""
        select distinct on (unique_id) resource_type, node_name, status, message,
            {'failure_rows' if 'failure_rows' in columns else 'null::jsonb as failure_rows'},
            {'failures_relation' if 'failures_relation' in columns else 'null::text as failures_relation'}
        from ops.dbt_node_results where airflow_run_id = %s
        order by unique_id, recorded_at desc
        """, (run_id,)).fetchall()


def dbt_failures(results: list[dict]) -> list[dict]:
    """The models and tests that failed (stale sources are reported apart); a failed data test with the first
    rows it returned (its stored failures), which say what is wrong in the test's own words."""
    return [{"task": "dbt", "what": f"{node['resource_type']} {node['node_name']}",
             "error": first_line(node["message"] or node["status"]),
             "rows": node.get("failure_rows") or [],
             "rows_at": stored_failures_table(node)}
            for node in results if node["status"] in FAILED_NODE_STATUSES and node["resource_type"] != "source"]


def stored_failures_table(node: dict) -> str:
    """Where dbt stored the test's rows (`dbt_test__audit.<test>`; dbt shortens a long test name there)."""
    relation = node.get("failures_relation")  # database.schema.table
    return relation.split(".", 1)[-1] if relation else f"dbt_test__audit.{node['node_name']}"


def first_line(error: str | None) -> str:
    """The first non-blank line of an error: the one that says what broke (the rest is in the log)."""
    return next((line.strip() for line in (error or "").splitlines() if line.strip()), "")


def failure_row(row: dict, width: int = 300) -> str:
    """One row of a failed test's result as `column: value; ...`, its explanation (`problem`, `fix`) first."""
    ordered = sorted(row.items(), key=lambda item: (item[0] not in ("problem", "fix"), item[0] != "problem"))
    text = "; ".join(f"{column}: {value}" for column, value in ordered)
    return text if len(text) <= width else text[:width - 1] + "…"


def mapped_task_names() -> dict[str, list[str]]:
    """The load tasks' mapped instances in map-index order: what `<task>_<index>` loads."""
    from csops.extract.board_resources import BOARD_RESOURCES
    from csops.extract.nexpro_tables import NEXPRO_TABLES
    from csops.extract.salesforce_objects import SALESFORCE_OBJECTS

    return {LOAD_TASKS["nexpro"]: [table.name for table in NEXPRO_TABLES],
            LOAD_TASKS["salesforce"]: list(SALESFORCE_OBJECTS), LOAD_TASKS["board"]: list(BOARD_RESOURCES)}


def task_and_what(task_id: str) -> tuple[str, str | None]:
    """`salesforce_extract.load_object_3` -> (`salesforce_extract.load_object`, `Contact`)."""
    base, _, index = task_id.rpartition("_")
    names = mapped_task_names().get(base)
    if names and index.isdigit() and int(index) < len(names):
        return base, names[int(index)]
    return task_id, None


def table_label(source_name: str, table_name: str) -> str:
    """The name the mapped task shows: a Salesforce object as spelt in Salesforce (`Account`)."""
    if source_name == "salesforce":
        from csops.extract.salesforce_objects import SALESFORCE_OBJECTS

        return next((name for name in SALESFORCE_OBJECTS if name.lower() == table_name), table_name)
    return table_name


def failed_dbt_nodes(warehouse_url: str, run_id: str) -> list[dict]:
    """The run's models and tests whose latest result failed, whichever Airflow task ran them."""
    with psycopg.connect(warehouse_url) as connection:
        return dbt_failures(dbt_results(connection, run_id))


def run_summary(warehouse_url: str, run_id: str, task_states: dict[str, str] | None = None,
                run_date: date | None = None) -> dict:
    """The run's account. `task_states` (task id -> Airflow state) names failed tasks the ops tables
    cannot know about, such as a task that failed before it reached the warehouse. `run_date` is the
    business date the run built; the health lines are that day's (the latest scored day without it)."""
    with psycopg.connect(warehouse_url, row_factory=dict_row) as connection:
        loads = []
        if table_exists(connection, "ops.extract_runs"):
            loads = connection.execute(
                """
                select source_name, table_name, load_mode, status, rows_read, rows_inserted, rows_updated,
                    rows_deleted, rows_quarantined, api_calls, added_columns, duration_seconds, error
                from ops.extract_runs where run_id = %s
                order by status = 'succeeded', source_name, table_name
                """, (run_id,)).fetchall()
        dbt = dbt_results(connection, run_id)
        identity_issues = {}
        if table_exists(connection, "marts.dq_identity_issues"):
            identity_issues = {row["issue_type"]: row["issues"] for row in connection.execute(
                "select issue_type, count(*) as issues from marts.dq_identity_issues group by issue_type "
                "order by issue_type").fetchall()}
        revenue = latest_revenue(connection)
        health = health_of_the_day(connection, run_date) if table_exists(connection, "marts.fct_health_scores") \
            else None
    models = [node for node in dbt if node["resource_type"] in MODEL_TYPES]
    tests = [node for node in dbt if node["resource_type"] in TEST_TYPES]
    sources = [node for node in dbt if node["resource_type"] == "source"]

    failures = []
    for load in loads:
        if load["status"] == "failed":
            failures.append({"task": LOAD_TASKS.get(load["source_name"], f"{load['source_name']}_extract"),
                             "what": table_label(load["source_name"], load["table_name"]),
                             "error": first_line(load["error"]) or "failed, without an error message"})
    failures += dbt_failures(dbt)
    explained = {(failure["task"], failure["what"]) for failure in failures}
    states = task_states or {}
    for task_id, state in sorted(states.items()):
        task, what = task_and_what(task_id)
        if state not in FAILED_TASK_STATES or (task, what) in explained:
            continue
        if task.startswith("dbt.") and any(failure["task"] == "dbt" for failure in failures):
            continue  # a model's task fails with its node, named above
        failures.append({"task": task, "what": what,
                         "error": "the task failed before it recorded anything; its log has the error"})

    return {
        "run_id": run_id,
        "failures": failures,
        "tasks_not_run": sorted(task_id for task_id, state in states.items() if state in NOT_RUN_TASK_STATES),
        "loads": [load for load in loads if not load["source_name"].startswith("csv:")],
        "loads_stopped": [{"table": load["table_name"], "reason": load["error"]} for load in loads
                          if load["status"] == "stopped"],
        "api_calls": {source: sum(load["api_calls"] for load in loads if load["source_name"] == source)
                      for source in sorted({load["source_name"] for load in loads if load["api_calls"]})},
        "identity_issues": identity_issues,
        "revenue": revenue,
        "health": health,
        "files": [load for load in loads if load["source_name"].startswith("csv:")],
        "rows_quarantined": sum(load["rows_quarantined"] for load in loads),
        "files_rejected": [load["source_name"].removeprefix("csv:") for load in loads if load["status"] == "rejected"],
        "rejections": [{"file": load["source_name"].removeprefix("csv:"), "reason": first_line(load["error"])}
                       for load in loads if load["status"] == "rejected"],
        "stale_sources": [{"source": node["node_name"], "status": node["status"], "message": node["message"]}
                          for node in sources if node["status"] != "pass"],
        "sources_checked": len(sources),
        "models_succeeded": sum(node["status"] == "success" for node in models),
        "models_failed": [node["node_name"] for node in models if node["status"] != "success"],
        "tests_passed": sum(node["status"] == "pass" for node in tests),
        "tests_warned": [node["node_name"] for node in tests if node["status"] == "warn"],
        "warnings": [{"test": node["node_name"], "rows": node.get("failure_rows") or []}
                     for node in tests if node["status"] == "warn"],
        "tests_failed": [node["node_name"] for node in tests if node["status"] not in ("pass", "warn", "skipped")],
        # dbt build skips everything downstream of a failure, the tests of what it did not build included.
        "tests_skipped": sum(node["status"] == "skipped" for node in tests),
    }


def health_of_the_day(connection: psycopg.Connection, run_date: date | None) -> dict | None:
    """The day's status mix and transitions from marts.fct_health_scores, or None if the day has no scores."""
    if not table_exists(connection, "marts.fct_health_scores"):
        return None
    cursor = connection.cursor(row_factory=dict_row)
    score_date = run_date or cursor.execute(
        "select max(score_date) as score_date from marts.fct_health_scores").fetchone()["score_date"]
    statuses = cursor.execute(
        """
        select health_status, count(*) as companies, count(*) filter (where is_low_coverage) as low_coverage,
            count(*) filter (where override_status is not null) as overridden
        from marts.fct_health_scores where score_date = %s group by health_status
        """, (score_date,)).fetchall()
    if not statuses:
        return None
    transitions = cursor.execute(
        """
        select status_transition, count(*) as companies from marts.fct_health_scores
        where score_date = %s and status_transition is not null
        group by status_transition order by count(*) desc, status_transition
        """, (score_date,)).fetchall()
    has_rubric = cursor.execute(
        "select count(*) as found from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'fct_health_scores' and column_name = 'previous_rubric_hash'").fetchone()["found"]
    return {
        "score_date": score_date,
        "statuses": {row["health_status"]: row["companies"] for row in statuses},
        "rubric_change": rubric_change(connection, score_date) if has_rubric else None,
        "low_coverage": sum(row["low_coverage"] for row in statuses),
        "overridden": sum(row["overridden"] for row in statuses),
        "transitions": {row["status_transition"]: row["companies"] for row in transitions},
    }


def latest_revenue(connection: psycopg.Connection, run_date: date | None = None) -> dict | None:
    """The latest month of marts.fct_revenue_monthly (starting on or before `run_date` when given), or None."""
    if not table_exists(connection, "marts.fct_revenue_monthly"):
        return None
    return connection.cursor(row_factory=dict_row).execute(
        "select month_start, closing_mrr, customers_at_end, nrr, grr, nrr_t12m, grr_t12m "
        "from marts.fct_revenue_monthly where month_start <= coalesce(%s::date, month_start) "
        "order by month_start desc limit 1", (run_date,)).fetchone()


def active_signals(connection: psycopg.Connection, run_date: date, language: str = "en") -> dict[str, dict[str, int]]:
    """The companies with each active signal on `run_date` (marts.fct_company_signals), by kind and the signal's
    name in `language` (`ja`: signal_name_ja)."""
    if not table_exists(connection, "marts.fct_company_signals"):
        return {}
    name = "signal_name_ja" if language == "ja" else "signal_name"
    signals: dict[str, dict[str, int]] = {}
    for kind, signal, companies in connection.cursor(row_factory=tuple_row).execute(
            f"select signal_kind, coalesce({name}, signal_key), count(distinct company_id) "
            "from marts.fct_company_signals where as_of_date = %s "
            "group by 1, 2 order by signal_kind, count(distinct company_id) desc, 2", (run_date,)).fetchall():
        signals.setdefault(kind, {})[signal] = companies
    return signals


def format_health(health: dict) -> list[str]:
    total = sum(health["statuses"].values())
    mix = ", ".join(f"{status} {health['statuses'].get(status, 0):,} "
                    f"({health['statuses'].get(status, 0) / total:.1%})" for status in HEALTH_STATUSES)
    notes = [f"{health[key]:,} {words}" for key, words in (("low_coverage", "with low coverage"),
                                                            ("overridden", "overridden by a CSM")) if health[key]]
    transitions = ", ".join(f"{transition} {count:,}" for transition, count in health["transitions"].items())
    lines = [f"Health, {health['score_date']:%Y-%m-%d} (marts.fct_health_scores): {total:,} companies: {mix}"
             + (f"; {', '.join(notes)}" if notes else ""),
             f"  status changes that day: {transitions or 'none'}"]
    if change := health.get("rubric_change"):
        lines.append(f"  {format_rubric_change(change)} (the rubric changed, not the customers: "
                     "its status changes fire no playbook)")
    return lines


def format_summary(summary: dict) -> str:
    lines = [f"Run {summary['run_id']}"]
    if summary["failures"]:
        lines += ["", f"FAILED ({len(summary['failures'])}):"]
        for failure in summary["failures"]:
            what = f" [{failure['what']}]" if failure["what"] else ""
            lines.append(f"  {failure['task']}{what}: {failure['error']}")
            if failure.get("rows"):
                lines.append(f"    its first rows ({failure['rows_at']} has them all):")
                lines += [f"    - {failure_row(row)}" for row in failure["rows"][:3]]
    if summary["tasks_not_run"]:
        lines.append(f"Not run because something upstream failed: {len(summary['tasks_not_run'])} task(s)")
    lines += ["", "Rows loaded (read / inserted / updated / deleted / quarantined):"]
    for load in summary["loads"]:
        note = f"  [{load['status']}]" if load["status"] != "succeeded" else ""
        if load["added_columns"]:
            note += f"  new column(s): {', '.join(load['added_columns'])}"
        lines.append(f"  {load['source_name']:<10} {load['table_name']:<20} {load['load_mode']:<11} "
                     f"{load['rows_read']:>10,} {load['rows_inserted']:>10,} {load['rows_updated']:>9,} "
                     f"{load['rows_deleted']:>7,} {load['rows_quarantined']:>6,}{note}")
    for source, calls in summary["api_calls"].items():
        lines.append(f"{source.capitalize()} API calls: {calls:,}")
    if summary["loads_stopped"]:
        lines.append(f"Stopped at an API budget (Salesforce's reserve, board's daily limit) "
                     f"({len(summary['loads_stopped'])}): "
                     + ", ".join(stopped["table"] for stopped in summary["loads_stopped"])
                     + "; they resume from their watermark next run")
    lines.append(f"Quarantined rows: {summary['rows_quarantined']:,}"
                 + (" (see ops.quarantine)" if summary["rows_quarantined"] else ""))
    loaded_files = [load for load in summary["files"] if load["status"] == "succeeded"]
    if loaded_files:
        lines.append(f"CSV files loaded: {len(loaded_files)} ({sum(f['rows_read'] for f in loaded_files):,} rows)")
    if summary["files_rejected"]:
        lines.append(f"Rejected CSV files (nothing loaded from them): {', '.join(summary['files_rejected'])}; "
                     f"{LOAD_TASKS['nexpro'].rsplit('.', 1)[0]}.load_csv_inbox ended skipped")
        lines += [f"  {rejection['file']}: {rejection['reason']}" for rejection in summary.get("rejections", [])]
    if summary["stale_sources"]:
        lines.append("Stale sources: " + ", ".join(f"{stale['source']} ({stale['status']})"
                                                   for stale in summary["stale_sources"]))
    elif summary["sources_checked"]:
        lines.append(f"Source freshness: all {summary['sources_checked']} tables fresh")
    if summary["identity_issues"]:
        lines.append("Identity issues (marts.dq_identity_issues): " + ", ".join(
            f"{issue_type} {count}" for issue_type, count in summary["identity_issues"].items()))
    if revenue := summary["revenue"]:
        lines.append(f"Revenue, {revenue['month_start']:%Y-%m} (marts.fct_revenue_monthly): "
                     f"MRR ¥{revenue['closing_mrr']:,.0f} from {revenue['customers_at_end']:,} customers; "
                     f"NRR {percent(revenue['nrr'])}, GRR {percent(revenue['grr'])} in the month; "
                     f"trailing 12 months NRR {percent(revenue['nrr_t12m'])}, GRR {percent(revenue['grr_t12m'])}")
    if summary["health"]:
        lines += format_health(summary["health"])
    lines.append(f"dbt: {summary['models_succeeded']} models/seeds built, {summary['tests_passed']} tests passed"
                 + (f", {len(summary['tests_warned'])} warned" if summary["tests_warned"] else ""))
    for warning in summary.get("warnings", []):
        lines.append(f"  warned: {warning['test']}"
                     + (f": {failure_row(warning['rows'][0])}" if warning["rows"] else ""))
    if summary["models_failed"]:
        lines.append(f"  models not built: {', '.join(summary['models_failed'])}")
    if summary["tests_failed"]:
        lines.append(f"  tests failed: {', '.join(summary['tests_failed'])}")
    if summary["tests_skipped"]:
        lines.append(f"  tests not run, their models not built: {summary['tests_skipped']}")
    return "\n".join(lines)


ACTIVATION_ACTIONS = {"salesforce_task": "Salesforce tasks", "opportunity_draft": "Opportunity drafts",
                      "email": "e-mails", "slack": "Slack status-change lines"}
ACTIVATION_OUTCOMES = ("created", "sent", "dry_run", "skipped_cooldown", "skipped_no_recipient", "skipped_backfill",
                       "failed", "stopped", "unknown")


def activation_summary(warehouse_url: str, run_id: str, run_date: date, *, dry_run: bool = False,
                       verdict: dict | None = None, write_back: dict | None = None,
                       task_states: dict[str, str] | None = None) -> dict:
    """What one cs_activation run did: the killswitch's verdict, the write-back's report (its task's return
    value), and the firings this run recorded in ops.playbook_firings, per action and outcome."""
    firings, earlier, day, unknown = [], 0, {}, []
    with psycopg.connect(warehouse_url, row_factory=dict_row) as connection:
        if table_exists(connection, "ops.playbook_firings"):
            firings = connection.execute(
                """
                select action, outcome, count(*) as firings,
                    (array_agg(playbook_key || ' ' || coalesce(company_id, '') || ': ' || coalesce(detail, '')
                        order by firing_key))[1:5] as examples
                from ops.playbook_firings
                where run_date = %s and airflow_run_id = %s and company_id is not null
                group by action, outcome order by action, outcome
                """, (run_date, run_id)).fetchall()
            earlier = connection.execute(
                "select count(*) as firings from ops.playbook_firings where run_date = %s and company_id is not null "
                "and airflow_run_id is distinct from %s and outcome in ('sent', 'created')",
                (run_date, run_id)).fetchone()["firings"]
            unknown = connection.execute(
                "select firing_key, action, target, detail from ops.playbook_firings where outcome = 'unknown' "
                "order by run_date, firing_key").fetchall()
            day = {row["playbook_key"]: row for row in connection.execute(
                "select playbook_key, outcome, detail, airflow_run_id = %s as this_run from ops.playbook_firings "
                "where run_date = %s and company_id is null", (run_id, run_date)).fetchall()}
    with psycopg.connect(warehouse_url, row_factory=dict_row) as connection:
        health = health_of_the_day(connection, run_date)
    states = task_states or {}
    failures = [{"task": task_id, "what": None, "error": "the task failed; its log has the error"}
                for task_id, state in sorted(states.items()) if state in FAILED_TASK_STATES]
    outcomes = {outcome: sum(row["firings"] for row in firings if row["outcome"] == outcome)
                for outcome in ACTIVATION_OUTCOMES}
    return {
        "run_id": run_id,
        "run_date": run_date,
        "rubric_change": (health or {}).get("rubric_change"),
        "dry_run": dry_run,
        "failures": failures,
        "killswitch": verdict,
        "write_back": write_back,
        "firings": firings,
        "outcomes": outcomes,
        "fired_before": earlier,
        "digest": day.get("daily_digest"),
        "alert": day.get("killswitch_alert"),
        "alert_slack": day.get("killswitch_alert_slack"),
        "unknown": unknown,
    }


KILLSWITCH_LINES = {
    "passed": "Killswitch: inputs sound (sources loaded for the day, dbt build passed, no mass firing)",
    "recovered": "Killswitch: inputs sound again after the hold since {since}: firing resumes",
    "overridden": "Killswitch overridden by {by}; it found: {reasons}",
    "tripped": "STOPPED by the killswitch: nothing was written back or fired. Why: {reasons}",
    "still_tripped": "STILL STOPPED by the killswitch (held since {since}): nothing was written back or fired. "
                     "Why: {reasons}. Fix the inputs, or trigger with override_killswitch after checking them",
    "backfill": "Not fired: {reasons}",
}


def format_activation_summary(summary: dict) -> str:
    lines = [f"Activation {summary['run_date']:%Y-%m-%d} (run {summary['run_id']})"
             + (" — DRY RUN: nothing was sent" if summary["dry_run"] else "")]
    if summary["failures"]:
        lines += [f"FAILED ({len(summary['failures'])}):"]
        lines += [f"  {failure['task']}: {failure['error']}" for failure in summary["failures"]]
    if change := summary.get("rubric_change"):
        lines.append(f"{format_rubric_change(change)}: the rubric changed, not the customers; those status "
                     "changes fire no playbook and no Slack line")
    verdict = summary["killswitch"]
    if verdict is None:
        lines.append("Killswitch: did not finish; nothing was written back or fired")
    else:
        lines.append(KILLSWITCH_LINES[verdict.get("decision", "tripped" if verdict["tripped"] else "passed")].format(
            reasons="; ".join(verdict["reasons"]), by=verdict.get("overridden_by"),
            since=(verdict.get("inputs") or {}).get("previous", {}).get("run_date")))
    for key in ("alert_slack", "alert"):
        if alert := summary.get(key):
            lines.append(f"Killswitch alert ({'Slack' if key == 'alert_slack' else 'e-mail to the ops address'}): "
                         f"{alert['outcome']}" + ("" if alert["this_run"] else " (by an earlier run)"))
    if report := summary["write_back"]:
        objects = report.get("objects", [])
        lines.append(f"Written back to Salesforce: {sum(o['accepted'] for o in objects):,} rows accepted, "
                     f"{sum(o['rejected'] for o in objects):,} rejected, of {sum(o['changed'] for o in objects):,} "
                     f"changed ({report.get('api_calls', 0)} API calls)"
                     + (f"; stopped: {report['stopped']}" if report.get("stopped") else ""))
        lines += [f"  {o['object']:<16} {o['changed']:>7,} changed {o['accepted']:>7,} accepted "
                  f"{o['rejected']:>5,} rejected" for o in objects if o["changed"] or o["rejected"]]
    elif verdict and not verdict["tripped"]:
        lines.append("Written back to Salesforce: nothing (the write-back did not finish)")
    by_action = {}
    for row in summary["firings"]:
        by_action.setdefault(row["action"], {})[row["outcome"]] = row["firings"]
    done = [f"{ACTIVATION_ACTIONS.get(action, action)} "
            + ", ".join(f"{count:,} {outcome}" for outcome, count in counts.items()
                        if outcome in ("created", "sent", "dry_run"))
            for action, counts in by_action.items() if {"created", "sent", "dry_run"} & set(counts)]
    lines.append("Playbooks: " + ("; ".join(done) if done else "nothing new fired")
                 + (f" ({summary['fired_before']:,} fired for this date by an earlier run)"
                    if summary["fired_before"] else ""))
    outcomes = summary["outcomes"]
    skipped = [f"{outcomes[key]:,} {words}" for key, words in (("skipped_cooldown", "in their cooldown"),
                                                                ("skipped_no_recipient", "with nobody to send to"))
               if outcomes[key]]
    if skipped:
        lines.append("  skipped: " + ", ".join(skipped))
    for outcome, words in (("failed", "FAILED (a re-run tries again)"), ("stopped", "stopped by the killswitch"),
                           ("skipped_backfill", "not fired: a past date (backfill)")):
        if outcomes[outcome]:
            lines.append(f"  {outcomes[outcome]:,} {words}:")
            lines += [f"    {example}" for row in summary["firings"] if row["outcome"] == outcome
                      for example in row["examples"]]
    if digest := summary["digest"]:
        lines.append(f"Slack digest: {digest['outcome']}" + ("" if digest["this_run"] else " (by an earlier run)"))
    if summary["unknown"]:
        lines.append(f"UNKNOWN ({len(summary['unknown'])}): sent or not, the process died before it could say. "
                     "Check whether each reached its recipient; to send one again: csops activation resend "
                     "--firing <key> (Salesforce records are looked up by the next run instead):")
        lines += [f"    {row['firing_key']} ({row['action']} to {row['target']})" for row in summary["unknown"][:20]]
        if len(summary["unknown"]) > 20:
            lines.append(f"    ... {len(summary['unknown']) - 20} more in ops.playbook_firings (outcome 'unknown')")
    lines.append("Ledger: ops.playbook_firings; killswitch verdicts: ops.killswitch_verdicts")
    return "\n".join(lines)
