"""The activation killed with SIGKILL at random moments, then run again: nothing goes out twice.

The real processes and peers: `csops activation run` (the killswitch, the write-back, the playbooks and the
digest, as cs_activation's tasks do them) against a copy of the test world's built warehouse, the Salesforce
sandbox org over HTTPS through simple-salesforce, the mail catcher over SMTP and the Slack sink over HTTP.
Each seeded trial starts a fresh copy of the warehouse and an org without playbook records, kills the
activation at a random moment of its run, runs it again to the end, and checks what arrived. The last trial is
finished by the real DAG (`airflow dags test cs_activation`) instead of the command.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from csops import settings
from csops.sandbox.salesforce.objects import OBJECTS_BY_NAME, table_name
from csops.sandbox.salesforce.seed import seed_org
from tests.conftest import TEST_WORLD, VENV_BIN, create_database
from tests.dbt.warehouse import RUN_DATE
from tests.salesforce_fixtures import sandbox_beside

TRIALS = 10
PLAYBOOK_OBJECTS = ("Task", "Opportunity")


@pytest.fixture(scope="module")
def org(postgres, salesforce_sandbox, tmp_path_factory):
    """An org seeded with the test world (the warehouse's Account Ids and CSMs)."""
    with sandbox_beside(salesforce_sandbox, create_database(postgres, "salesforce_crash"),
                        tmp_path_factory.mktemp("org-crash")) as sandbox:
        seed_org(sandbox.database_url, TEST_WORLD, progress=lambda _message: None)
        yield sandbox


@pytest.fixture(scope="module")
def environment(org, mail_catcher, slack_sink, tmp_path_factory) -> dict[str, str]:
    """What the activation process is started with: every connection configured, so it starts no server."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_CONN", "CS_"))}
    environment.update({
        f"AIRFLOW_CONN_{settings.SALESFORCE_CONN_ID.upper()}": json.dumps(org.airflow_connection()),
        f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}": json.dumps(mail_catcher.airflow_connection()),
        f"AIRFLOW_CONN_{settings.SLACK_CONN_ID.upper()}": json.dumps(slack_sink.airflow_connection()),
        "REQUESTS_CA_BUNDLE": str(org.ca_bundle()),
        "CS_LOCAL_DIR": str(tmp_path_factory.mktemp("crash-local")),
        "CS_MAIL_FROM": "success@nexpro.example",
    })
    return environment


def with_warehouse(environment: dict, url: str) -> dict:
    return {**environment, f"AIRFLOW_CONN_{settings.WAREHOUSE_CONN_ID.upper()}": url, "CS_NEXPRO_URL": url}


def activation(environment: dict) -> subprocess.Popen:
    return subprocess.Popen([str(VENV_BIN / "csops"), "activation", "run", "--date", RUN_DATE.isoformat()],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(environment: dict) -> str:
    process = activation(environment)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-4000:]
    return output


PLAYBOOKS_START = "the playbooks"  # the line `csops activation run` logs as its playbooks begin


def run_until(process: subprocess.Popen, marker: str) -> float:
    """Read the process's output until `marker` (or its end); the rest is drained in the background. Returns
    the moment the marker was seen."""
    for line in process.stdout:
        if marker in line:
            break
    seen = time.monotonic()
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return seen


def clear_playbook_records(org) -> None:
    """An org as before any activation: no Task or Opportunity made by a playbook (deleted ones included)."""
    with psycopg.connect(org.database_url, autocommit=True) as connection:
        for name in PLAYBOOK_OBJECTS:
            connection.execute(sql.SQL('delete from {} where "Playbook_Firing_Key__c" is not null').format(
                sql.SQL(table_name(OBJECTS_BY_NAME[name]))))


def playbook_records(org) -> Counter:
    """How many records carry each firing key in the org."""
    counts = Counter()
    with psycopg.connect(org.database_url) as connection:
        for name in PLAYBOOK_OBJECTS:
            counts.update(key for (key,) in connection.execute(sql.SQL(
                'select "Playbook_Firing_Key__c" from {} where "Playbook_Firing_Key__c" is not null').format(
                sql.SQL(table_name(OBJECTS_BY_NAME[name])))).fetchall())
    return counts


def ledger(url: str) -> dict[str, dict]:
    with psycopg.connect(url, row_factory=dict_row) as connection:
        if connection.execute("select to_regclass('ops.playbook_firings')").fetchone()["to_regclass"] is None:
            return {}  # killed before it made the ledger
        return {row["firing_key"]: row for row in connection.execute(
            "select * from ops.playbook_firings where run_date = %s", (RUN_DATE,)).fetchall()}


def check_trial(url: str, org, emails: list[dict], posts: list[dict]) -> dict:
    """What arrived after a killed run and the run after it: nothing twice, and every firing accounted for."""
    fired = ledger(url)
    sent_mail = Counter((tuple(entry["rcpt_tos"]), entry["subject"]) for entry in emails)
    assert max(sent_mail.values(), default=1) == 1, f"an e-mail went out twice: {sent_mail.most_common(3)}"
    texts = Counter(post["text"] for post in posts)
    assert max(texts.values(), default=1) == 1, f"a Slack post went out twice: {texts.most_common(2)}"
    records = playbook_records(org)
    assert max(records.values(), default=1) == 1, f"a firing made two Salesforce records: {records.most_common(2)}"
    company = {key: row for key, row in fired.items() if row["company_id"]}
    outcomes = Counter(row["outcome"] for row in company.values())
    assert set(outcomes) <= {"sent", "created", "unknown", "skipped_no_recipient", "skipped_cooldown"}, outcomes
    created = {key for key, row in company.items() if row["outcome"] == "created"}
    assert created == set(records), "every created firing is in the org, and the org holds nothing else"
    for key, row in company.items():
        if row["action"] == "email":
            arrived = sum(row["target"] in entry["rcpt_tos"] for entry in emails)
            assert arrived == 1 if row["outcome"] == "sent" else arrived <= 1, (key, row["outcome"], arrived)
    return {"outcomes": outcomes, "emails": len(emails), "posts": len(posts), "records": sum(records.values())}


def test_killed_at_random_moments_the_activation_sends_nothing_twice(postgres, built_template, org, environment,
                                                                      mail_catcher, slack_sink, tmp_path):
    template, completed, _results = built_template
    assert completed.returncode == 0, completed.stdout[-4000:]
    clear_playbook_records(org)
    url = create_database(postgres, "crash_timing", template=template)
    timed = activation(with_warehouse(environment, url))  # how long an undisturbed activation's playbooks take
    playbooks_start = run_until(timed, PLAYBOOKS_START)
    assert timed.wait(timeout=600) == 0
    playbooks = time.monotonic() - playbooks_start
    expected = check_trial(url, org, mail_catcher.mailbox.entries(), slack_sink.channel.posts())
    assert expected["outcomes"]["sent"] and expected["outcomes"]["created"]

    rng = random.Random(20261207)
    totals = Counter()
    for trial in range(TRIALS):
        clear_playbook_records(org)
        url = create_database(postgres, f"crash_{trial}", template=template)
        trial_environment = with_warehouse(environment, url)
        mail_before, posts_before = len(mail_catcher.mailbox.entries()), len(slack_sink.channel.posts())
        process = activation(trial_environment)
        # Most kills land in the playbooks (where the claims are); every third anywhere before their end.
        run_until(process, "csops" if trial % 3 == 0 else PLAYBOOKS_START)
        time.sleep(rng.uniform(0, playbooks * (3 if trial % 3 == 0 else 1)))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        killed = ledger(url) if process.returncode == -signal.SIGKILL else {}
        if trial == TRIALS - 1:
            dag_test(trial_environment, tmp_path)
        else:
            finish(trial_environment)
        result = check_trial(url, org, mail_catcher.mailbox.entries()[mail_before:],
                             slack_sink.channel.posts()[posts_before:])
        unknown = {key for key, row in ledger(url).items() if row["outcome"] == "unknown"}
        listed = subprocess.run([str(VENV_BIN / "csops"), "activation", "unknown", "--date", RUN_DATE.isoformat()],
                                env=trial_environment, capture_output=True, text=True, timeout=300)
        assert {line.split("\t")[0] for line in listed.stdout.splitlines() if "\t" in line} == unknown
        assert all(key in killed and killed[key]["outcome"] == "claimed" for key in unknown), \
            "only a firing the killed process had claimed and not finished is unknown"
        claimed_when_killed = sum(row["outcome"] == "claimed" for row in killed.values())
        totals.update(result["outcomes"])
        totals.update({"trials": 1, "claimed when killed": claimed_when_killed, "emails": result["emails"],
                       "posts": result["posts"], "salesforce records": result["records"]})
        print(f"trial {trial}: killed after {len(killed)} ledger rows ({claimed_when_killed} claimed), then: "
              f"{dict(result['outcomes'])}; {result['emails']} e-mails, {result['posts']} Slack posts, "
              f"{result['records']} Salesforce records, none twice")
    print(f"{TRIALS} trials, an undisturbed run's playbooks taking {playbooks:.1f}s: {dict(totals)}")
    assert totals["claimed when killed"], "some kill landed between a claim and its outcome"


def dag_test(environment: dict, tmp_path) -> None:
    """Finish the date with the real DAG: `airflow dags test cs_activation` on the state the kill left."""
    home = tmp_path / "airflow-home"
    airflow = {**environment, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(settings.REPO_ROOT / "dags"),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.REPO_ROOT / "plugins"),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "CS_TASK_RETRIES": "0"}
    migrated = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=airflow, capture_output=True,
                              text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    logical = (RUN_DATE + timedelta(days=1)).isoformat() + "T06:00:00+09:00"
    completed = subprocess.run([str(VENV_BIN / "airflow"), "dags", "test", "cs_activation", logical, "--conf",
                                json.dumps({"run_date": RUN_DATE.isoformat()})], env=airflow, capture_output=True,
                               text=True, timeout=900)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-5000:]
    assert f"Activation {RUN_DATE}" in completed.stdout + completed.stderr
