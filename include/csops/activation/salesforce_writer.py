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
safe: an upsert by external id or an update by Id applied twice leaves the record as applied once. A call
refused for good raises `WriteError`, carrying what was written before it.

`check_budget(sf, calls_needed)` reads the org's `/limits` (one call) and refuses, with
`BudgetReserveReached`, when the calls would eat into the reserve other integrations are promised
(`settings.salesforce_api_reserve()` of the daily budget).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

import requests
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from csops import settings
from csops.extract.salesforce import error_codes, is_transient

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200  # records per sObject Collections call (Salesforce's limit)
BULK_JOB_BYTES = 90 * 1024 * 1024  # CSV per ingest job, under Bulk API 2.0's 100 MB upload limit
BULK_CALLS_PER_JOB = 6  # create, upload, close, poll (at least once), successful and failed results
BULK_RECORDS_PER_JOB = 250_000  # about what BULK_JOB_BYTES holds (the budget estimate's unit)
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


@dataclass
class WriteResult:
    """The outcome of one `upsert`: per record, and the API calls it took (retries included)."""

    object_name: str
    external_id_field: str
    method: str = "none"  # "collections", "bulk", or "none" when there was nothing to send
    outcomes: list[RecordOutcome] = field(default_factory=list)
    api_calls: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def succeeded(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if outcome.success]

    @property
    def failed(self) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.success]


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
    """Salesforce refused a whole call for good (after retries). `result` holds what was written before it."""

    def __init__(self, message: str, result: WriteResult) -> None:
        super().__init__(message)
        self.result = result


def estimate_calls(record_count: int, bulk_threshold: int | None = None) -> int:
    """The API calls `upsert` needs for `record_count` records, without retries (a Bulk job polled once)."""
    if record_count <= 0:
        return 0
    threshold = settings.salesforce_write_bulk_threshold() if bulk_threshold is None else bulk_threshold
    if record_count <= threshold:
        return math.ceil(record_count / COLLECTION_SIZE)
    return BULK_CALLS_PER_JOB * math.ceil(record_count / BULK_RECORDS_PER_JOB)


def check_budget(sf: Salesforce, calls_needed: int, *, unsent: str = "the records") -> Budget:
    """Read the org's daily API budget (one call) and refuse when `calls_needed` would eat into the reserve.

    `unsent` names what would be left unsent, for the error message.
    """
    limits = _with_retries(lambda: sf.limits(), "limits", _Counter())
    daily = limits["DailyApiRequests"]
    budget = Budget(max=int(daily["Max"]), remaining=int(daily["Remaining"]),
                    reserve=int(int(daily["Max"]) * settings.salesforce_api_reserve()), calls_needed=calls_needed)
    if not budget.allows:
        raise BudgetReserveReached(
            f"not sent: {unsent} need about {calls_needed:,} API call(s), and the org has {budget.remaining:,} of "
            f"{budget.max:,} daily requests left, of which {budget.reserve:,} "
            f"({settings.salesforce_api_reserve():.0%}) are kept for other integrations. Nothing was sent; the "
            f"next run sends it. To send today, lower CS_SALESFORCE_API_RESERVE or raise the org's limit", budget)
    return budget


def upsert(sf: Salesforce, object_name: str, external_id_field: str, records: Sequence[dict], *,
           bulk_threshold: int | None = None, on_outcomes: Callable[[list[RecordOutcome]], None] | None = None,
           attempts: int = DEFAULT_ATTEMPTS, retry_wait_seconds: float = 1.0,
           poll_seconds: float = DEFAULT_POLL_SECONDS) -> WriteResult:
    """Write `records` (field API name -> value; each carries `external_id_field`) to `object_name`.

    `external_id_field="Id"` updates existing records by Id; any other field upserts by that external id.
    Values may be str, int, float, Decimal, bool, date, datetime or None (None clears the field).
    `on_outcomes` is called after each call (Collections) or job (Bulk) with its records' outcomes, so the
    caller can record them as they come.
    """
    started = time.monotonic()
    result = WriteResult(object_name, external_id_field)
    keys = record_keys(object_name, external_id_field, records)
    if not records:
        return result
    threshold = settings.salesforce_write_bulk_threshold() if bulk_threshold is None else bulk_threshold
    counter = _Counter(attempts=attempts, wait_seconds=retry_wait_seconds)
    result.method = "collections" if len(records) <= threshold else "bulk"
    batches = (_collection_batches(records, COLLECTION_SIZE) if result.method == "collections"
               else _bulk_batches(records, external_id_field))
    try:
        for batch in batches:
            if result.method == "collections":
                outcomes = _send_collection(sf, object_name, external_id_field, batch, keys, counter)
            else:
                outcomes = _run_bulk_job(sf, object_name, external_id_field, batch, counter, poll_seconds)
            result.outcomes.extend(outcomes)
            if on_outcomes is not None:
                on_outcomes(outcomes)
    except (SalesforceError, requests.RequestException, TimeoutError) as error:
        _finish(result, counter, started)
        what = (f"{error_codes(error)} (HTTP {error.status})" if isinstance(error, SalesforceError)
                else f"{type(error).__name__}: {error}")
        raise WriteError(f"Salesforce {object_name}: {what}; {len(result.outcomes):,} of {len(records):,} "
                         "record(s) were answered before it", result) from error
    _finish(result, counter, started)
    log.info("Salesforce %s: %s record(s) by %s via %s: %s written, %s rejected, %s API call(s) (%s retried) in %.1fs",
             object_name, len(records), external_id_field, result.method, len(result.succeeded), len(result.failed),
             result.api_calls, result.retries, result.seconds)
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


def _with_retries(operation: Callable[[], object], what: str, counter: _Counter):
    """Run one API call; transient failures are retried with backoff. Every attempt counts as a call."""

    def note_retry(state) -> None:
        counter.retries += 1
        log.warning("Salesforce %s: %s; retrying (attempt %s of %s)", what, state.outcome.exception(),
                    state.attempt_number + 1, counter.attempts)

    for attempt in Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(counter.attempts),
                            wait=wait_exponential(multiplier=counter.wait_seconds, max=30), reraise=True,
                            before_sleep=note_retry):
        with attempt:
            counter.calls += 1
            return operation()
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


def _send_collection(sf: Salesforce, object_name: str, external_id_field: str, batch: list[tuple[int, dict]],
                     keys: list[str], counter: _Counter) -> list[RecordOutcome]:
    by_id = external_id_field == "Id"
    body = []
    for _number, record in batch:
        values = {name: json_value(value) for name, value in record.items() if name != "Id"}
        if by_id:
            values["id"] = record["Id"]
        body.append({"attributes": {"type": object_name}, **values})
    path = "composite/sobjects" if by_id else f"composite/sobjects/{object_name}/{external_id_field}"
    answers = _with_retries(lambda: sf.restful(path, method="PATCH", json={"allOrNone": False, "records": body}),
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


def _run_bulk_job(sf: Salesforce, object_name: str, external_id_field: str, data: str, counter: _Counter,
                  poll_seconds: float) -> list[RecordOutcome]:
    """One ingest job: create, upload, close, poll, then read which rows succeeded and which failed."""
    client = getattr(sf.bulk2, object_name)._client
    by_id = external_id_field == "Id"
    what = f"{object_name} Bulk job"
    job = _with_retries(lambda: client.create_job(Operation.update if by_id else Operation.upsert,
                                                  external_id_field=None if by_id else external_id_field),
                        what, counter)
    job_id = job["id"]
    _with_retries(lambda: client.upload_job_data(job_id, data), what, counter)
    try:
        _with_retries(lambda: client.close_job(job_id), what, counter)
    except SalesforceError:
        # A close whose answer was lost and whose retry finds the job closed already: carry on with the job.
        if _with_retries(lambda: client.get_job(job_id, False), what, counter)["state"] == "Open":
            raise
    deadline = time.monotonic() + DEFAULT_JOB_TIMEOUT_SECONDS
    while True:
        info = _with_retries(lambda: client.get_job(job_id, False), what, counter)
        if info["state"] in TERMINAL_JOB_STATES:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"Salesforce {what} {job_id} still {info['state']} after "
                               f"{DEFAULT_JOB_TIMEOUT_SECONDS:.0f}s: see Setup > Bulk Data Load Jobs")
        time.sleep(poll_seconds)
    outcomes = {}
    if info.get("numberRecordsProcessed", 0) > info.get("numberRecordsFailed", 0):
        text = _with_retries(lambda: client.get_ingest_results(job_id, "successfulResults"), what, counter)
        for row in csv.DictReader(io.StringIO(text)):
            key = row[external_id_field]
            outcomes[key] = RecordOutcome(key, True, record_id=row["sf__Id"] or None,
                                          created=row.get("sf__Created") == "true")
    if info.get("numberRecordsFailed", 0):
        text = _with_retries(lambda: client.get_ingest_results(job_id, "failedResults"), what, counter)
        for row in csv.DictReader(io.StringIO(text)):
            key = row[external_id_field]
            code, message = parse_bulk_error(row["sf__Error"])
            outcomes[key] = RecordOutcome(key, False, error_code=code, message=message)
    if info["state"] != "JobComplete":
        log.warning("Salesforce %s %s ended %s: %s", what, job_id, info["state"], info.get("errorMessage"))
    sent = [row[0] for row in csv.reader(io.StringIO(data))][1:]
    unprocessed_code = "BULK_JOB_" + info["state"].upper() if info["state"] != "JobComplete" else "UNPROCESSED"
    unprocessed_message = info.get("errorMessage") or f"the job ended {info['state']} before processing this row"
    return [outcomes.get(key) or RecordOutcome(key, False, error_code=unprocessed_code, message=unprocessed_message)
            for key in sent]


def parse_bulk_error(text: str) -> tuple[str, str]:
    """Salesforce's sf__Error `CODE:message:fields --` as (code, message)."""
    code, _, rest = text.partition(":")
    message = rest.removesuffix(" --")
    if ":" in message:
        message = message.rsplit(":", 1)[0]
    return code, message
