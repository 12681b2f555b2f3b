"""Write records to Salesforce: the one way the platform writes there (write-back and playbook tasks).

`upsert(sf, object_name, external_id_field, records)` sends records keyed by an external id field, or by
`Id` for updates of records that exist already (Account). Up to `settings.salesforce_write_bulk_threshold()`
records go through sObject Collections, 200 per call (`PATCH /composite/sobjects/{object}/{field}` upserts,
`PATCH /composite/sobjects` updates by Id); above it through Bulk API 2.0 ingest jobs (create the job, upload
the CSV, close it, poll until it finishes, read its successful and failed rows). Both report every record's
outcome: its Id and whether it was created, or Salesforce's error code and message. One bad record fails
alone (allOrNone is off); the rest are written.

Transient errors (503 and other 5xx, `UNABLE_TO_LOCK_ROW`, dropped connections, timeouts) are retried with
exponential backoff, a bounded number of times; every attempt is an API call and is counted. Retrying is
safe: an upsert by external id or an update by Id applied twice leaves the record as applied once. An
expired session (401 `INVALID_SESSION_ID`) logs in again once and repeats the call, through the extract's
`SalesforceApi`. A call refused for good raises `WriteError`, carrying what was answered before it.

`sf` is a logged-in simple-salesforce client or the extract's `SalesforceApi`; over a `CountingSession` every
call first checks the org's remaining daily requests, and the write stops cleanly before one would eat into
the reserve: `WriteError` with `stopped_by_budget`, whose `result` holds each answered record's outcome,
lists the records with no answer (`result.unanswered`) and names a Bulk job left in Salesforce
(`result.open_job`) whose results `collect_bulk_job` reads later.

`check_budget(sf, calls_needed)` reads the org's `/limits` (one call) and refuses, with
`BudgetReserveReached`, when the calls would eat into the reserve other integrations are promised
(`settings.salesforce_api_reserve()` of the daily budget). `estimate_calls` gives the calls a write needs,
a Bulk job's status polls included (see BULK_ASSUMED_ROWS_PER_SECOND).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

import requests
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from csops import settings
from csops.extract import salesforce as extract
from csops.extract.salesforce import SalesforceApi, error_codes, is_transient

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200  # records per sObject Collections call (Salesforce's limit)
BULK_JOB_BYTES = 90 * 1024 * 1024  # CSV per ingest job, under Bulk API 2.0's 100 MB upload limit
# create, upload, close, successful and failed results: the calls of a Bulk job besides its status polls
BULK_CALLS_PER_JOB = 5
BULK_RECORDS_PER_JOB = 250_000  # about what BULK_JOB_BYTES holds (the budget estimate's unit)
# How fast Salesforce applies a job's rows, for the number of status polls the estimate counts. An assumption,
# not a Salesforce figure: the sandbox org applied 500,000 rows in about 14 minutes (~600 a second,
# docs/benchmarks.md); a real org with triggers, flows or validation rules on the object can be much slower,
# and then each extra minute costs 30 more polls at 2 s (up to 1,800 when a job runs for the whole hour).
BULK_ASSUMED_ROWS_PER_SECOND = 500
NULL_MARKER = "#N/A"  # in a Bulk CSV, sets a field to null (an empty cell leaves it unchanged)
DEFAULT_ATTEMPTS = 4
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_JOB_TIMEOUT_SECONDS = 3600.0
TERMINAL_JOB_STATES = ("JobComplete", "Failed", "Aborted")


@dataclass(frozen=True)
class RecordOutcome:
    """What Salesforce did with one record: `key` is the value of its external id field (or its Id)."""

    key: str
    success: bool
    record_id: str | None = None
    created: bool | None = None
    error_code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class BulkJob:
    """A Bulk API 2.0 ingest job left in Salesforce without its results read: `keys` are its rows' keys.

    `closed`: the upload was complete, so Salesforce writes the rows whether or not anyone asks; else the job is
    still open and Salesforce writes none of them. `collect_bulk_job` reads (or aborts) it later.
    """

    job_id: str
    object_name: str
    external_id_field: str
    keys: tuple[str, ...]
    closed: bool


@dataclass
class WriteResult:
    """The outcome of one `upsert`: per record, and the API calls it took (retries included).

    `keys` are the keys of every record given, in order; `outcomes` the answers Salesforce gave, one per record
    answered; `unanswered` the keys with no answer (a write stopped before them: unknown whether written).
    `open_job` is a Bulk job the write left in Salesforce without reading its results.
    """

    object_name: str
    external_id_field: str
    method: str = "none"  # "collections", "bulk", or "none" when there was nothing to send
    outcomes: list[RecordOutcome] = field(default_factory=list)
    api_calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)
    open_job: BulkJob | None = None

    @property
    def succeeded(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if outcome.success]

    @property
    def failed(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]

    @property
    def unanswered(self) -> list[str]:
        answered = {outcome.key for outcome in self.outcomes}
        return [key for key in self.keys if key not in answered]


@dataclass(frozen=True)
class Budget:
    """The org's daily API budget as `/limits` reported it, and what a write needs of it."""

    max: int
    remaining: int
    reserve: int  # requests kept for other integrations
    calls_needed: int

    @property
    def allows(self) -> bool:
        return self.remaining - self.calls_needed >= self.reserve


class BudgetReserveReached(RuntimeError):
    """Writing would eat into the reserve of the org's daily API budget: nothing was sent."""

    def __init__(self, message: str, budget: Budget) -> None:
        super().__init__(message)
        self.budget = budget


class WriteError(RuntimeError):
    """A write that stopped before every record was answered: Salesforce refused a whole call for good (after
    retries), or the next call would have eaten into the reserve of the org's daily API budget
    (`stopped_by_budget`). `result` holds the outcome of every record answered before it (`result.outcomes`),
    the keys of those with no answer (`result.unanswered`) and a Bulk job left in Salesforce (`result.open_job`).
    """

    def __init__(self, message: str, result: WriteResult, *, stopped_by_budget: bool = False) -> None:
        super().__init__(message)
        self.result = result
        self.stopped_by_budget = stopped_by_budget


def salesforce_api(sf: Salesforce | SalesforceApi) -> SalesforceApi:
    """`sf` as the extract's `SalesforceApi`, whose calls log in again once after an expired session.

    A bare client logs in again with the login simple-salesforce kept from its first one (username and
    password, or JWT: what the Airflow connection uses); a client made from a session id cannot, and its
    expired session fails the call with a message saying so.
    """
    if isinstance(sf, SalesforceApi):
        return sf

    def log_in_again(_session: requests.Session) -> Salesforce:
        if getattr(sf, "_salesforce_login_partial", None) is None:
            raise RuntimeError("the Salesforce session expired and this client was made from a session id, so it "
                               "cannot log in again: pass a client made with the connection's login, or a "
                               "SalesforceApi (csops.extract.salesforce)")
        sf._refresh_session()  # simple-salesforce's own re-login, with the credentials of the first one
        return sf

    return SalesforceApi(log_in_again, sf.session, client=sf)


def estimate_calls(record_count: int, bulk_threshold: int | None = None, *,
                   poll_seconds: float = DEFAULT_POLL_SECONDS) -> int:
    """The API calls `upsert` needs for `record_count` records, without retries.

    Collections: one call per 200 records. Bulk: per job of up to BULK_RECORDS_PER_JOB rows, its five calls
    (create, upload, close, successful and failed results) and one status poll per `poll_seconds` of the
    time Salesforce takes to apply the rows at BULK_ASSUMED_ROWS_PER_SECOND (at least one poll).
    """
    if record_count <= 0:
        return 0
    threshold = settings.salesforce_write_bulk_threshold() if bulk_threshold is None else bulk_threshold
    if record_count <= threshold:
        return math.ceil(record_count / COLLECTION_SIZE)
    calls, left = 0, record_count
    while left > 0:
        rows = min(left, BULK_RECORDS_PER_JOB)
        calls += BULK_CALLS_PER_JOB + bulk_polls(rows, poll_seconds)
        left -= rows
    return calls


def bulk_polls(rows: int, poll_seconds: float = DEFAULT_POLL_SECONDS) -> int:
    """The status polls a Bulk job of `rows` is expected to take (see BULK_ASSUMED_ROWS_PER_SECOND)."""
    return 1 + math.ceil(rows / BULK_ASSUMED_ROWS_PER_SECOND / poll_seconds)


def check_budget(sf: Salesforce | SalesforceApi, calls_needed: int, *, unsent: str = "the records") -> Budget:
    """Read the org's daily API budget (one call) and refuse when `calls_needed` would eat into the reserve.

    `unsent` names what would be left unsent, for the error message.
    """
    api = salesforce_api(sf)
    try:
        limits = _with_retries(api, lambda client: client.limits(), "limits", _Counter())
    except extract.BudgetReserveReached as reached:  # the session knows already: down to the reserve
        session = api.session
        budget = Budget(max=session.limit, remaining=session.remaining, reserve=session.reserve,
                        calls_needed=calls_needed)
        raise BudgetReserveReached(budget_refusal(budget, unsent), budget) from reached
    daily = limits["DailyApiRequests"]
    budget = Budget(max=int(daily["Max"]), remaining=int(daily["Remaining"]),
                    reserve=int(int(daily["Max"]) * settings.salesforce_api_reserve()), calls_needed=calls_needed)
    if not budget.allows:
        raise BudgetReserveReached(budget_refusal(budget, unsent), budget)
    return budget


def budget_refusal(budget: Budget, unsent: str) -> str:
    return (f"not sent: {unsent} need about {budget.calls_needed:,} API call(s), and the org has "
            f"{budget.remaining:,} of {budget.max:,} daily requests left, of which {budget.reserve:,} "
            f"({budget.reserve / budget.max:.0%}) are kept for other integrations. Nothing was sent; the next run "
            "sends it. To send today, lower CS_SALESFORCE_API_RESERVE or raise the org's limit")


def upsert(sf: Salesforce | SalesforceApi, object_name: str, external_id_field: str, records: Sequence[dict], *,
           bulk_threshold: int | None = None, on_outcomes: Callable[[list[RecordOutcome]], None] | None = None,
           attempts: int = DEFAULT_ATTEMPTS, retry_wait_seconds: float = 1.0,
           poll_seconds: float = DEFAULT_POLL_SECONDS) -> WriteResult:
    """Write `records` (field API name -> value; each carries `external_id_field`) to `object_name`.

    `external_id_field="Id"` updates existing records by Id; any other field upserts by that external id.
    Values may be str, int, float, Decimal, bool, date, datetime or None (None clears the field).
    `on_outcomes` is called after each call (Collections) or job (Bulk) with its records' outcomes, so the
    caller can record them as they come. A write that stops early raises `WriteError` (see there).
    """
    started = time.monotonic()
    keys = record_keys(object_name, external_id_field, records)
    result = WriteResult(object_name, external_id_field, keys=keys)
    if not records:
        return result
    api = salesforce_api(sf)
    threshold = settings.salesforce_write_bulk_threshold() if bulk_threshold is None else bulk_threshold
    counter = _Counter(attempts=attempts, wait_seconds=retry_wait_seconds)
    result.method = "collections" if len(records) <= threshold else "bulk"
    batches = (_collection_batches(records, COLLECTION_SIZE) if result.method == "collections"
               else _bulk_batches(records, external_id_field))
    try:
        for batch in batches:
            if result.method == "collections":
                outcomes = _send_collection(api, object_name, external_id_field, batch, keys, counter)
            else:
                outcomes = _run_bulk_job(api, object_name, external_id_field, batch, counter, poll_seconds, result)
            result.outcomes.extend(outcomes)
            if on_outcomes is not None:
                on_outcomes(outcomes)
    except extract.BudgetReserveReached as reached:
        _finish(result, counter, started)
        raise WriteError(budget_stop_message(result, api.session), result, stopped_by_budget=True) from reached
    except (SalesforceError, requests.RequestException, TimeoutError) as error:
        _finish(result, counter, started)
        what = (f"{error_codes(error)} (HTTP {error.status})" if isinstance(error, SalesforceError)
                else f"{type(error).__name__}: {error}")
        raise WriteError(f"Salesforce {object_name}: {what}; {len(result.outcomes):,} of {len(records):,} "
                         f"record(s) were answered before it{open_job_note(result.open_job)}", result) from error
    _finish(result, counter, started)
    log.info("Salesforce %s: %s record(s) by %s via %s: %s written, %s rejected, %s API call(s) (%s retried) in %.1fs",
             object_name, len(records), external_id_field, result.method, len(result.succeeded), len(result.failed),
             result.api_calls, result.retries, result.seconds)
    return result


def budget_stop_message(result: WriteResult, session: requests.Session) -> str:
    """What a write stopped by the budget reserve did and left: answered, in a Bulk job, for the next run."""
    used, limit, reserve = (getattr(session, name, None) for name in ("used", "limit", "reserve"))
    budget = (f"{used:,} of {limit:,} daily requests used, {reserve:,} kept for other integrations"
              if None not in (used, limit, reserve) else "the org's daily requests are down to the reserve")
    in_job = set(result.open_job.keys) if result.open_job and result.open_job.closed else set()
    resend = [key for key in result.unanswered if key not in in_job]
    return (f"Salesforce {result.object_name}: stopped before spending the reserve of the org's daily API budget "
            f"({budget}). {len(result.outcomes):,} of {len(result.keys):,} record(s) were answered "
            f"({len(result.succeeded):,} written, {len(result.failed):,} rejected) and are kept"
            f"{open_job_note(result.open_job)}; "
            + (f"the next run sends the other {len(resend):,}. To send them today, lower CS_SALESFORCE_API_RESERVE "
               "or raise the org's limit" if resend else "nothing is left to send"))


def open_job_note(job: BulkJob | None) -> str:
    if job is None:
        return ""
    if job.closed:
        return (f"; Bulk job {job.job_id} holds {len(job.keys):,} more, which Salesforce writes: their results are "
                "read first on the next run (collect_bulk_job), so they are not sent again")
    return (f"; Bulk job {job.job_id} was not closed, so Salesforce writes none of its {len(job.keys):,} "
            "record(s): the next run aborts it (collect_bulk_job)")


def collect_bulk_job(sf: Salesforce | SalesforceApi, job: BulkJob, *, attempts: int = DEFAULT_ATTEMPTS,
                     retry_wait_seconds: float = 1.0) -> WriteResult:
    """The outcomes of a Bulk job an earlier write left without reading its results (`WriteResult.open_job`).

    A finished job: each of its rows' outcomes (one call for its state, one or two for its rows). A job still
    open: aborted (one more call), so Salesforce never writes it; its rows stay unanswered, to be sent again.
    A job Salesforce no longer knows: its rows stay unanswered. A closed job still running: `open_job` is set
    again, to collect later. Raises `WriteError` like `upsert`.
    """
    started = time.monotonic()
    api = salesforce_api(sf)
    result = WriteResult(job.object_name, job.external_id_field, method="bulk", keys=list(job.keys), open_job=job)
    counter = _Counter(attempts=attempts, wait_seconds=retry_wait_seconds)
    what = f"{job.object_name} Bulk job"
    jobs = _ingest_jobs(job.object_name)
    try:
        try:
            info = _with_retries(api, lambda client: jobs(client).get_job(job.job_id, False), what, counter)
        except SalesforceResourceNotFound:
            log.warning("Salesforce %s %s no longer exists: its %s row(s) are sent again", what, job.job_id,
                        len(job.keys))
            info = None
        if info is None:
            result.open_job = None
        elif info["state"] == "Open":
            _with_retries(api, lambda client: jobs(client).abort_job(job.job_id, False), what, counter)
            result.open_job = None
        elif info["state"] in TERMINAL_JOB_STATES:
            result.outcomes = _job_outcomes(api, job, info, counter)
            result.open_job = None
        else:
            result.open_job = replace(job, closed=True)
    except extract.BudgetReserveReached as reached:
        _finish(result, counter, started)
        raise WriteError(f"Salesforce {what} {job.job_id}: not collected, the org's daily requests are down to the "
                         "reserve; the next run collects it", result, stopped_by_budget=True) from reached
    except (SalesforceError, requests.RequestException) as error:
        _finish(result, counter, started)
        what_failed = (f"{error_codes(error)} (HTTP {error.status})" if isinstance(error, SalesforceError)
                       else f"{type(error).__name__}: {error}")
        raise WriteError(f"Salesforce {what} {job.job_id}: {what_failed}; not collected, the next run tries again",
                         result) from error
    _finish(result, counter, started)
    return result


def record_keys(object_name: str, external_id_field: str, records: Sequence[dict]) -> list[str]:
    """Each record's key; a record without one, or two records with the same, is refused naming them."""
    keys, seen = [], {}
    for number, record in enumerate(records):
        value = record.get(external_id_field)
        if value in (None, ""):
            raise ValueError(f"{object_name} record #{number} has no {external_id_field}: every record written by "
                             f"{external_id_field} needs its value ({dict(list(record.items())[:4])})")
        key = str(value)
        if key in seen:
            raise ValueError(f"{object_name} records #{seen[key]} and #{number} share {external_id_field} = {key}: "
                             "send one record per key")
        seen[key] = number
        keys.append(key)
    return keys


# --- Calls, counted and retried ----------------------------------------------------------------------------


@dataclass
class _Counter:
    attempts: int = DEFAULT_ATTEMPTS
    wait_seconds: float = 1.0
    calls: int = 0
    retries: int = 0


def _with_retries(api: SalesforceApi, operation: Callable[[Salesforce], object], what: str, counter: _Counter):
    """Run one API call (`operation(client)`); transient failures are retried with backoff, an expired session
    logs in again (`SalesforceApi.once`). Every attempt counts as a call."""

    def note_retry(state) -> None:
        counter.retries += 1
        log.warning("Salesforce %s: %s; retrying (attempt %s of %s)", what, state.outcome.exception(),
                    state.attempt_number + 1, counter.attempts)

    def counted(client: Salesforce):
        counter.calls += 1
        try:
            return operation(client)
        except extract.BudgetReserveReached:
            counter.calls -= 1  # the session refused before calling: nothing was sent
            raise

    for attempt in Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(counter.attempts),
                            wait=wait_exponential(multiplier=counter.wait_seconds, max=30), reraise=True,
                            before_sleep=note_retry):
        with attempt:
            return api.once(counted)
    raise AssertionError("unreachable: tenacity re-raises the last error")


def _finish(result: WriteResult, counter: _Counter, started: float) -> None:
    result.api_calls, result.retries = counter.calls, counter.retries
    result.seconds = time.monotonic() - started


# --- Values ------------------------------------------------------------------------------------------------


def json_value(value):
    """A value as Salesforce's JSON takes it: dates ISO, decimals as numbers."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def csv_value(value) -> str:
    """A value as a Bulk API CSV cell: null as #N/A (an empty cell would leave the field as it is)."""
    if value is None:
        return NULL_MARKER
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(json_value(value))


# --- sObject Collections -----------------------------------------------------------------------------------


def _collection_batches(records: Sequence[dict], size: int):
    for start in range(0, len(records), size):
        yield list(enumerate(records[start:start + size], start=start))


def _send_collection(api: SalesforceApi, object_name: str, external_id_field: str, batch: list[tuple[int, dict]],
                     keys: list[str], counter: _Counter) -> list[RecordOutcome]:
    by_id = external_id_field == "Id"
    body = []
    for _number, record in batch:
        values = {name: json_value(value) for name, value in record.items() if name != "Id"}
        if by_id:
            values["id"] = record["Id"]
        body.append({"attributes": {"type": object_name}, **values})
    path = "composite/sobjects" if by_id else f"composite/sobjects/{object_name}/{external_id_field}"
    answers = _with_retries(
        api, lambda client: client.restful(path, method="PATCH", json={"allOrNone": False, "records": body}),
        f"{object_name} collection", counter)
    outcomes = []
    for (number, _record), answer in zip(batch, answers, strict=True):
        if answer.get("success"):
            outcomes.append(RecordOutcome(keys[number], True, record_id=answer.get("id"),
                                          created=answer.get("created", False)))
        else:
            error = (answer.get("errors") or [{}])[0]
            outcomes.append(RecordOutcome(keys[number], False, error_code=error.get("statusCode", "UNKNOWN"),
                                          message=error.get("message", "")))
    return outcomes


# --- Bulk API 2.0 ------------------------------------------------------------------------------------------


def _bulk_batches(records: Sequence[dict], external_id_field: str):
    """CSV texts (header + rows) of at most BULK_JOB_BYTES each, with the records they hold."""
    columns = [external_id_field] + sorted({name for record in records for name in record} - {external_id_field})
    header = _csv_line(columns)
    rows, size = [], len(header)
    for record in records:
        line = _csv_line([csv_value(record.get(name)) if name in record else "" for name in columns])
        if rows and size + len(line) > BULK_JOB_BYTES:
            yield header + "".join(rows)
            rows, size = [], len(header)
        rows.append(line)
        size += len(line)
    yield header + "".join(rows)


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _ingest_jobs(object_name: str) -> Callable[[Salesforce], object]:
    """The Bulk API 2.0 client of `object_name` on a logged-in client (taken anew after a new login)."""
    return lambda client: getattr(client.bulk2, object_name)._client


def _run_bulk_job(api: SalesforceApi, object_name: str, external_id_field: str, data: str, counter: _Counter,
                  poll_seconds: float, result: WriteResult) -> list[RecordOutcome]:
    """One ingest job: create, upload, close, poll, then read which rows succeeded and which failed.

    While the job exists and its results are not read, `result.open_job` names it (closed or not).
    """
    jobs = _ingest_jobs(object_name)
    by_id = external_id_field == "Id"
    what = f"{object_name} Bulk job"
    keys = tuple(row[0] for row in csv.reader(io.StringIO(data)))[1:]
    job = _with_retries(api, lambda client: jobs(client).create_job(
        Operation.update if by_id else Operation.upsert, external_id_field=None if by_id else external_id_field),
        what, counter)
    job_id = job["id"]
    result.open_job = BulkJob(job_id, object_name, external_id_field, keys, closed=False)
    _with_retries(api, lambda client: jobs(client).upload_job_data(job_id, data), what, counter)
    try:
        _with_retries(api, lambda client: jobs(client).close_job(job_id), what, counter)
    except SalesforceError:
        # A close whose answer was lost and whose retry finds the job closed already: carry on with the job.
        if _with_retries(api, lambda client: jobs(client).get_job(job_id, False), what, counter)["state"] == "Open":
            raise
    result.open_job = replace(result.open_job, closed=True)
    deadline = time.monotonic() + DEFAULT_JOB_TIMEOUT_SECONDS
    while True:
        info = _with_retries(api, lambda client: jobs(client).get_job(job_id, False), what, counter)
        if info["state"] in TERMINAL_JOB_STATES:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"Salesforce {what} {job_id} still {info['state']} after "
                               f"{DEFAULT_JOB_TIMEOUT_SECONDS:.0f}s: see Setup > Bulk Data Load Jobs")
        time.sleep(poll_seconds)
    outcomes = _job_outcomes(api, result.open_job, info, counter)
    result.open_job = None
    return outcomes


def _job_outcomes(api: SalesforceApi, job: BulkJob, info: dict, counter: _Counter) -> list[RecordOutcome]:
    """Each row's outcome of a finished job (`info`: its state), in the order of `job.keys`."""
    jobs = _ingest_jobs(job.object_name)
    what = f"{job.object_name} Bulk job"
    outcomes = {}
    if info.get("numberRecordsProcessed", 0) > info.get("numberRecordsFailed", 0):
        text = _with_retries(api, lambda client: jobs(client).get_ingest_results(job.job_id, "successfulResults"),
                             what, counter)
        for row in csv.DictReader(io.StringIO(text)):
            key = row[job.external_id_field]
            outcomes[key] = RecordOutcome(key, True, record_id=row["sf__Id"] or None,
                                          created=row.get("sf__Created") == "true")
    if info.get("numberRecordsFailed", 0):
        text = _with_retries(api, lambda client: jobs(client).get_ingest_results(job.job_id, "failedResults"),
                             what, counter)
        for row in csv.DictReader(io.StringIO(text)):
            key = row[job.external_id_field]
            code, message = parse_bulk_error(row["sf__Error"])
            outcomes[key] = RecordOutcome(key, False, error_code=code, message=message)
    if info["state"] != "JobComplete":
        log.warning("Salesforce %s %s ended %s: %s", what, job.job_id, info["state"], info.get("errorMessage"))
    unprocessed_code = "BULK_JOB_" + info["state"].upper() if info["state"] != "JobComplete" else "UNPROCESSED"
    unprocessed_message = info.get("errorMessage") or f"the job ended {info['state']} before processing this row"
    return [outcomes.get(key) or RecordOutcome(key, False, error_code=unprocessed_code, message=unprocessed_message)
            for key in job.keys]


def parse_bulk_error(text: str) -> tuple[str, str]:
    """Salesforce's sf__Error `CODE:message:fields --` as (code, message)."""
    code, _, rest = text.partition(":")
    message = rest.removesuffix(" --")
    if ":" in message:
        message = message.rsplit(":", 1)[0]
    return code, message
