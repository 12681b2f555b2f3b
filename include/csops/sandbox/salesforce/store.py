"""The sandbox org's data: records of every sObject, written and checked as Salesforce does.

Records live in the `sf` schema (one table per object, one column per field, see `objects.ddl`). Every
write goes through this module, which applies Salesforce's rules: unknown and read-only fields are
refused, required fields must be present, values must fit their type, lookups must point at live
records, unique fields must not clash, and the fields Salesforce maintains itself (Id, audit fields,
owner, derived names, opportunity and task states) are set here. A failed write raises `ApiError`
with Salesforce's error code and the fields concerned, and leaves the caller's transaction usable
(each write runs in its own savepoint).

The org's bookkeeping lives in the `sf_meta` schema: API sessions, API usage per UTC day, settings
(daily limit, session lifetime), scripted faults and custom fields added at run time.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from csops.sandbox.salesforce import objects as catalog
from csops.sandbox.salesforce.errors import ApiError
from csops.sandbox.salesforce.objects import (
    API_VERSION,
    OPPORTUNITY_STAGES,
    TASK_STATUSES,
    Field,
    FieldValueError,
    SObject,
    format_datetime,
    from_json,
    id_sequence,
    is_valid_id,
    make_id,
    table_name,
    to_id18,
    to_json,
)

META_SCHEMA = "sf_meta"
DEFAULT_DAILY_LIMIT = 100_000
DEFAULT_SESSION_LIFETIME = 2 * 3600  # seconds of inactivity after which a session expires
DAILY_LIMIT = "daily_api_limit"
SESSION_LIFETIME = "session_lifetime_seconds"
REPLICATION_WINDOW = timedelta(days=30)  # how far back getUpdated/getDeleted reach, as in Salesforce

META_DDL = f"""
create schema if not exists {META_SCHEMA};
create table if not exists {META_SCHEMA}.sessions (
    session_hash text primary key,
    user_id text not null,
    created_at timestamptz not null default now(),
    last_used_at timestamptz not null default now()
);
create table if not exists {META_SCHEMA}.api_usage (day date primary key, used bigint not null);
create table if not exists {META_SCHEMA}.settings (name text primary key, value bigint not null);
create table if not exists {META_SCHEMA}.fault_rules (
    id bigserial primary key,
    method text not null,
    path_regex text not null,
    action text not null,
    delay_seconds double precision not null default 0,
    times_left integer,
    rate double precision,
    seed bigint not null default 0,
    matched bigint not null default 0
);
create table if not exists {META_SCHEMA}.custom_fields (
    position bigserial,
    object_name text not null,
    field_name text not null,
    definition jsonb not null,
    primary key (object_name, field_name)
);
"""

# Values a field takes on create when the client leaves it out (checkboxes are false, as in Salesforce).
CREATE_DEFAULTS = {("User", "IsActive"): True, ("Task", "Status"): "Not Started", ("Task", "Priority"): "Normal"}
AUDIT_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp")


class MultipleMatches(ApiError):
    """An upsert whose external id matches several live records (HTTP 300, as in Salesforce)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(300, "MULTIPLE_CHOICES", f"Multiple records found for this external ID: {', '.join(ids)}")
        self.ids = ids


# --- Schema and catalog ----------------------------------------------------------------------------------


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the bookkeeping tables and every object's table, sequence and indexes. Idempotent."""
    conn.execute(META_DDL)
    current = current_objects(conn)
    conn.execute(catalog.ddl(current))
    for obj in current.values():
        for f in obj.fields:
            if f.unique or f.external_id:
                conn.execute(_field_index(obj, f))


def _field_index(obj: SObject, f: Field) -> sql.Composed:
    """A unique index over live records for unique fields, a plain one for external ids (upsert lookups)."""
    kind = "unique index" if f.unique else "index"
    where = sql.SQL(' where not "IsDeleted"') if f.unique else sql.SQL("")
    return sql.SQL("create {} if not exists {} on {} ({}){}").format(
        sql.SQL(kind), sql.Identifier(f"{obj.name}_{f.name}_idx"[:63]), sql.SQL(table_name(obj)),
        sql.Identifier(f.name), where)


def current_objects(conn: psycopg.Connection) -> dict[str, SObject]:
    """The catalog's objects with the custom fields added at run time, by API name."""
    objects = dict(catalog.OBJECTS_BY_NAME)
    rows = conn.execute(f"select object_name, definition from {META_SCHEMA}.custom_fields order by position")
    for object_name, definition in rows:
        if object_name in objects:
            objects[object_name] = objects[object_name].with_field(field_from_json(definition))
    return objects


def field_from_json(definition: dict) -> Field:
    values = {key: value for key, value in definition.items() if key != "custom"}
    values["picklist"] = tuple(values.get("picklist") or ())
    return Field(**values)


def field_to_json(f: Field) -> dict:
    return asdict(f)


def add_custom_field(conn: psycopg.Connection, object_name: str, field: Field) -> None:
    """Add a custom field (a column) to an object, as an admin does in Setup: the schema drifts."""
    obj = catalog.find_object(object_name, current_objects(conn))
    if obj is None:
        raise ApiError(404, "NOT_FOUND", f"No object called {object_name!r}: custom fields go on an existing object")
    if not field.custom:
        raise ApiError(400, "INVALID_FIELD", f"{field.name}: custom field names end in __c")
    if obj.field(field.name) is not None:
        raise ApiError(400, "DUPLICATE_DEVELOPER_NAME", f"{obj.name}.{field.name} exists already")
    conn.execute(f"insert into {META_SCHEMA}.custom_fields (object_name, field_name, definition) values (%s, %s, %s)",
                 (obj.name, field.name, json.dumps(field_to_json(field))))
    conn.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
        sql.SQL(table_name(obj)), sql.Identifier(field.name), sql.SQL(field.postgres_type)))
    if field.unique or field.external_id:
        conn.execute(_field_index(obj, field))


# --- Records ---------------------------------------------------------------------------------------------


def record_url(obj: SObject, record_id: str, version: str = API_VERSION) -> str:
    return f"/services/data/v{version}/sobjects/{obj.name}/{record_id}"


def insert_record(conn: psycopg.Connection, obj: SObject, values: dict, user_id: str,
                  now: datetime | None = None) -> str:
    """Create a record from client values (JSON or CSV text); returns its new Id."""
    now = _now(now)
    row = _checked_values(conn, obj, values, creating=True)
    row = {**_create_defaults(obj, row), **row}
    _require_fields(obj, row, [f.name for f in obj.fields if _required_on_create(obj, f)])
    _derive_fields(obj, row, previous=None, now=now)
    return _insert_row(conn, obj, row, user_id, now)


def _insert_row(conn: psycopg.Connection, obj: SObject, row: dict, user_id: str | None, now: datetime) -> str:
    """Insert checked values with the system fields; a None `user_id` means the record creates itself (a User)."""
    number = conn.execute("select nextval(%s::regclass)", (id_sequence(obj),)).fetchone()[0]
    record_id = make_id(obj.key_prefix, number)
    creator = user_id or record_id
    row = {**row, "Id": record_id, "IsDeleted": False, "CreatedDate": now, "CreatedById": creator,
           "LastModifiedDate": now, "LastModifiedById": creator, "SystemModstamp": now}
    if obj.field("OwnerId") is not None and row.get("OwnerId") is None:
        row["OwnerId"] = creator
    statement = sql.SQL("insert into {} ({}) values ({})").format(
        sql.SQL(table_name(obj)), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join([sql.Placeholder()] * len(row)))
    _write(conn, obj, statement, list(row.values()), row, record_id)
    return record_id


def update_record(conn: psycopg.Connection, obj: SObject, record_id: str, values: dict, user_id: str,
                  now: datetime | None = None) -> None:
    """Change fields of a live record."""
    now = _now(now)
    record_id = _checked_id(obj, record_id)
    values = {key: value for key, value in values.items()
              if not (key.lower() == "id" and isinstance(value, str) and is_valid_id(value)
                      and to_id18(value) == record_id)}
    previous = _live_row(conn, obj, record_id)
    row = _checked_values(conn, obj, values, creating=False)
    _require_fields(obj, row, [name for name, value in row.items()
                               if value is None and _required_on_create(obj, obj.field(name))])
    _derive_fields(obj, row, previous=previous, now=now)
    row.update(LastModifiedDate=now, LastModifiedById=user_id, SystemModstamp=now)
    statement = sql.SQL('update {} set {} where "Id" = {}').format(
        sql.SQL(table_name(obj)),
        sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder()) for name in row),
        sql.Placeholder())
    _write(conn, obj, statement, [*row.values(), record_id], row, record_id)


def delete_record(conn: psycopg.Connection, obj: SObject, record_id: str, user_id: str,
                  now: datetime | None = None) -> None:
    """Move a record to the recycle bin: IsDeleted = true (getDeleted and queryAll still see it)."""
    now = _now(now)
    record_id = _checked_id(obj, record_id)
    _live_row(conn, obj, record_id)
    conn.execute(sql.SQL('update {} set "IsDeleted" = true, "LastModifiedDate" = %s, "SystemModstamp" = %s '
                         'where "Id" = %s').format(sql.SQL(table_name(obj))), (now, now, record_id))


def upsert_record(conn: psycopg.Connection, obj: SObject, external_field: str, external_value: str, values: dict,
                  user_id: str, now: datetime | None = None) -> tuple[str, bool]:
    """Update the live record whose external id is `external_value`, or create it. Returns (Id, created)."""
    f = _external_id_field(obj, external_field)
    if f.name == "Id":
        record_id = _checked_id(obj, external_value)
        update_record(conn, obj, record_id, values, user_id, now)
        return record_id, False
    values = {name: value for name, value in values.items() if name.lower() != f.name.lower()}
    ids = external_id_matches(conn, obj, f.name, external_value)
    if len(ids) > 1:
        raise MultipleMatches(ids)
    if ids:
        update_record(conn, obj, ids[0], values, user_id, now)
        return ids[0], False
    return insert_record(conn, obj, {**values, f.name: external_value}, user_id, now), True


def _external_id_field(obj: SObject, name: str) -> Field:
    f = obj.field(name)
    if f is None or not (f.external_id or f.name == "Id"):
        raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name} "
                                         f"(external ids of {obj.name}: "
                                         f"{', '.join(x.name for x in obj.external_id_fields) or 'none'})")
    return f


def external_id_matches(conn: psycopg.Connection, obj: SObject, external_field: str, external_value: str) -> list[str]:
    """Ids of the live records whose external id field holds `external_value`."""
    f = _external_id_field(obj, external_field)
    return [row[0] for row in conn.execute(
        sql.SQL('select "Id" from {} where {} = %s and not "IsDeleted" order by "Id"').format(
            sql.SQL(table_name(obj)), sql.Identifier(f.name)), (_converted(f, external_value),))]


def get_record(conn: psycopg.Connection, obj: SObject, record_id: str, fields: list[str] | None) -> dict:
    """A live record in the REST API's JSON shape: `attributes`, then the fields asked for (all by default)."""
    record_id = _checked_id(obj, record_id)
    selected = [_known_field(obj, name) for name in fields] if fields else list(obj.fields)
    if not any(f.name == "Id" for f in selected):
        selected.append(obj.field("Id"))
    row = _live_row(conn, obj, record_id, missing_code="NOT_FOUND")
    record = {"attributes": {"type": obj.name, "url": record_url(obj, record_id)}}
    record.update((f.name, to_json(f, row[f.name])) for f in selected)
    return record


def _now(now: datetime | None) -> datetime:
    """The write time, to the millisecond as Salesforce keeps it."""
    moment = now or datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _checked_id(obj: SObject, record_id: str) -> str:
    if not is_valid_id(record_id):
        raise ApiError(400, "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ["Id"])
    if not record_id.startswith(obj.key_prefix):
        raise ApiError(404, "NOT_FOUND", f"No {obj.name} has the Id {record_id} (the prefix {obj.key_prefix} "
                                         f"marks {obj.name} Ids)")
    return to_id18(record_id)


def _live_row(conn: psycopg.Connection, obj: SObject, record_id: str, missing_code: str = "ENTITY_IS_DELETED") -> dict:
    """The stored row, locked for the rest of the transaction; deleted or missing records are refused."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(sql.SQL('select * from {} where "Id" = %s for update').format(
            sql.SQL(table_name(obj))), (record_id,)).fetchone()
    if row is None:
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: no {obj.name} {record_id}")
    if row["IsDeleted"]:
        if missing_code == "NOT_FOUND":
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {obj.name} {record_id} "
                                             "is in the recycle bin")
        raise ApiError(404, "ENTITY_IS_DELETED", f"entity is deleted: {obj.name} {record_id}", ["Id"])
    return row


def _known_field(obj: SObject, name: str) -> Field:
    f = obj.field(name)
    if f is None:
        raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name])
    return f


def _converted(f: Field, value):
    try:
        return from_json(f, value)
    except FieldValueError as error:
        raise ApiError(400, error.error_code, str(error), [f.name]) from None


def _checked_values(conn: psycopg.Connection, obj: SObject, values: dict, creating: bool) -> dict:
    """Client values by field name, converted for storage; unknown, read-only and bad values refused."""
    row = {}
    for name, value in values.items():
        if name == "attributes":
            continue
        f = _known_field(obj, name)
        if not (f.createable if creating else f.updateable):
            action = "create" if creating else "update"
            raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                           f"Unable to {action} fields: {f.name}. Salesforce sets this field itself; "
                           "leave it out of the record.", [f.name])
        row[f.name] = _converted(f, value)
    _check_references(conn, obj, row)
    return row


def _check_references(conn: psycopg.Connection, obj: SObject, row: dict) -> None:
    objects = None
    for name, value in row.items():
        f = obj.field(name)
        if f.type != "reference" or value is None:
            continue
        objects = objects or current_objects(conn)
        parent = objects.get(f.reference_to)
        found = parent is not None and value.startswith(parent.key_prefix) and conn.execute(
            sql.SQL('select 1 from {} where "Id" = %s and not "IsDeleted"').format(sql.SQL(table_name(parent))),
            (value,)).fetchone()
        if not found:
            raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY",
                           f"invalid cross reference id: {f.name} = {value} is not a live {f.reference_to}", [f.name])


def _create_defaults(obj: SObject, row: dict) -> dict:
    defaults = {}
    for f in obj.fields:
        if (obj.name, f.name) in CREATE_DEFAULTS:
            defaults[f.name] = CREATE_DEFAULTS[(obj.name, f.name)]
        elif f.type == "boolean" and not f.nillable and f.createable:
            defaults[f.name] = False
    return {name: value for name, value in defaults.items() if row.get(name) is None}


def _required_on_create(obj: SObject, f: Field) -> bool:
    return (not f.nillable and f.createable and (obj.name, f.name) not in CREATE_DEFAULTS
            and f.type != "boolean")


def _require_fields(obj: SObject, row: dict, required: list[str]) -> None:
    missing = [name for name in required if row.get(name) is None]
    if missing:
        raise ApiError(400, "REQUIRED_FIELD_MISSING",
                       f"Required fields are missing: [{', '.join(missing)}] on {obj.name}", missing)


def _derive_fields(obj: SObject, row: dict, previous: dict | None, now: datetime) -> None:
    """Fields Salesforce computes from others: person names, opportunity and task states."""
    merged = {**(previous or {}), **row}
    if obj.name in {"User", "Contact"} and (previous is None or {"FirstName", "LastName"} & row.keys()):
        row["Name"] = " ".join(part for part in (merged.get("LastName"), merged.get("FirstName")) if part)
    if obj.name == "Opportunity" and "StageName" in row:
        closed, won, probability = OPPORTUNITY_STAGES.get(row["StageName"], (False, False, None))
        row["IsClosed"], row["IsWon"] = closed, won
        if "Probability" not in row and probability is not None:
            row["Probability"] = Decimal(probability)
    if obj.name == "Task" and "Status" in row:
        closed = TASK_STATUSES.get(row["Status"], False)
        if closed and not (previous and previous["IsClosed"]):
            row["CompletedDateTime"] = now
        elif not closed:
            row["CompletedDateTime"] = None
        row["IsClosed"] = closed


def _write(conn: psycopg.Connection, obj: SObject, statement: sql.Composed, params: list, row: dict,
           record_id: str) -> None:
    """Run an insert or update in a savepoint; a unique field clash becomes DUPLICATE_VALUE."""
    try:
        with conn.transaction():
            conn.execute(statement, params)
    except psycopg.errors.UniqueViolation:
        raise _duplicate_error(conn, obj, row, record_id) from None


def _duplicate_error(conn: psycopg.Connection, obj: SObject, row: dict, record_id: str) -> ApiError:
    for f in obj.fields:
        if f.unique and row.get(f.name) is not None:
            other = conn.execute(sql.SQL('select "Id" from {} where {} = %s and not "IsDeleted" and "Id" <> %s')
                                 .format(sql.SQL(table_name(obj)), sql.Identifier(f.name)),
                                 (row[f.name], record_id)).fetchone()
            if other:
                return ApiError(400, "DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                                        f"record with id: {other[0]}", [f.name])
    return ApiError(400, "DUPLICATE_VALUE", f"duplicate value found on {obj.name}")


# --- Replication: getUpdated / getDeleted ----------------------------------------------------------------


def _replication_window(start: datetime, end: datetime, now: datetime | None) -> tuple[datetime, datetime]:
    """The minutes [start, latest covered) a getUpdated/getDeleted call reads, checked as Salesforce checks."""
    now = _now(now)
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    if end < start:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "EndDate can not be before StartDate")
    if start < now - REPLICATION_WINDOW:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    return start, min(end, now)


def updated_ids(conn: psycopg.Connection, obj: SObject, start: datetime, end: datetime,
                now: datetime | None = None) -> dict:
    """Salesforce's getUpdated answer: Ids of live records created or changed in the window."""
    start, latest = _replication_window(start, end, now)
    rows = conn.execute(sql.SQL('select "Id" from {} where "SystemModstamp" >= %s and "SystemModstamp" < %s '
                                'and not "IsDeleted" order by "SystemModstamp", "Id"').format(
        sql.SQL(table_name(obj))), (start, latest))
    return {"ids": [row[0] for row in rows], "latestDateCovered": format_datetime(latest)}


def deleted_records(conn: psycopg.Connection, obj: SObject, start: datetime, end: datetime,
                    now: datetime | None = None) -> dict:
    """Salesforce's getDeleted answer: records moved to the recycle bin in the window, with when."""
    start, latest = _replication_window(start, end, now)
    rows = conn.execute(sql.SQL('select "Id", "SystemModstamp" from {} where "IsDeleted" and "SystemModstamp" >= %s '
                                'and "SystemModstamp" < %s order by "SystemModstamp", "Id"').format(
        sql.SQL(table_name(obj))), (start, latest))
    earliest = (_now(now) - REPLICATION_WINDOW).replace(second=0, microsecond=0)
    return {"deletedRecords": [{"id": record_id, "deletedDate": format_datetime(moment)} for record_id, moment in rows],
            "earliestDateAvailable": format_datetime(earliest), "latestDateCovered": format_datetime(latest)}


# --- Users and sessions ----------------------------------------------------------------------------------


def ensure_user(conn: psycopg.Connection, username: str, last_name: str, email: str, first_name: str = "") -> str:
    """The Id of the active user called `username`, created (by itself) if missing."""
    found = conn.execute('select "Id" from sf."User" where "Username" = %s and not "IsDeleted"', (username,)).fetchone()
    if found:
        return found[0]
    user = catalog.OBJECTS_BY_NAME["User"]
    now = _now(None)
    row = _checked_values(conn, user, {"Username": username, "FirstName": first_name or None, "LastName": last_name,
                                       "Email": email, "IsActive": True}, creating=True)
    _derive_fields(user, row, previous=None, now=now)
    return _insert_row(conn, user, row, None, now)


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create_session(conn: psycopg.Connection, user_id: str, organization_id: str) -> str:
    """A new API session for the user; only its hash is stored."""
    session_id = f"{organization_id[:15]}!{secrets.token_urlsafe(72)}"
    conn.execute(f"insert into {META_SCHEMA}.sessions (session_hash, user_id) values (%s, %s)",
                 (_session_hash(session_id), user_id))
    return session_id


def session_user(conn: psycopg.Connection, session_id: str) -> str | None:
    """The user of a live session (and the session's inactivity clock restarts), or None when expired/unknown."""
    row = conn.execute(
        f"update {META_SCHEMA}.sessions set last_used_at = now() where session_hash = %s "
        f"and last_used_at > now() - make_interval(secs => %s) returning user_id",
        (_session_hash(session_id), get_setting(conn, SESSION_LIFETIME, DEFAULT_SESSION_LIFETIME))).fetchone()
    return row[0] if row else None


def expire_sessions(conn: psycopg.Connection) -> int:
    return conn.execute(f"delete from {META_SCHEMA}.sessions").rowcount


# --- Settings and the daily API budget -------------------------------------------------------------------


def get_setting(conn: psycopg.Connection, name: str, default: int) -> int:
    row = conn.execute(f"select value from {META_SCHEMA}.settings where name = %s", (name,)).fetchone()
    return int(row[0]) if row else default


def set_setting(conn: psycopg.Connection, name: str, value: int) -> None:
    conn.execute(f"insert into {META_SCHEMA}.settings (name, value) values (%s, %s) "
                 "on conflict (name) do update set value = excluded.value", (name, value))


def _usage_day(now: datetime | None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def count_api_call(conn: psycopg.Connection, now: datetime | None = None) -> tuple[int, int, bool]:
    """Count one API call against today's (UTC) budget: (used, limit, allowed). Refused calls are not counted."""
    limit = get_setting(conn, DAILY_LIMIT, DEFAULT_DAILY_LIMIT)
    row = conn.execute(
        f"insert into {META_SCHEMA}.api_usage as usage (day, used) values (%(day)s, 1) "
        "on conflict (day) do update set used = usage.used + 1 where usage.used < %(limit)s returning used",
        {"day": _usage_day(now), "limit": limit}).fetchone()
    if row is None or row[0] > limit:
        return api_usage(conn, now)[0], limit, False
    return row[0], limit, True


def api_usage(conn: psycopg.Connection, now: datetime | None = None) -> tuple[int, int]:
    """Today's (UTC) API calls so far and the daily limit."""
    row = conn.execute(f"select used from {META_SCHEMA}.api_usage where day = %s", (_usage_day(now),)).fetchone()
    return (int(row[0]) if row else 0), get_setting(conn, DAILY_LIMIT, DEFAULT_DAILY_LIMIT)


def reset_api_usage(conn: psycopg.Connection, now: datetime | None = None) -> None:
    conn.execute(f"delete from {META_SCHEMA}.api_usage where day = %s", (_usage_day(now),))


# --- Scripted faults -------------------------------------------------------------------------------------

FAULT_ACTIONS = ("unavailable", "lock", "delay")


@dataclass(frozen=True)
class FaultRule:
    """Answer calls matching `method` (or `*`) and `path_regex` with a fault.

    action: `unavailable` (503 SERVER_UNAVAILABLE), `lock` (400 UNABLE_TO_LOCK_ROW) or `delay` (wait
    `delay_seconds`, then answer normally). `times`: only the next N matching calls; `rate`: the share of
    matching calls that fault, drawn from a generator seeded with `seed` (the same run faults the same calls).
    """

    method: str
    path_regex: str
    action: str
    delay_seconds: float = 0.0
    times: int | None = None
    rate: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"fault action {self.action!r}: use one of {', '.join(FAULT_ACTIONS)}")
        re.compile(self.path_regex)
        if self.rate is not None and not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate {self.rate}: use a probability between 0 and 1")


def add_fault(conn: psycopg.Connection, rule: FaultRule) -> int:
    return conn.execute(
        f"insert into {META_SCHEMA}.fault_rules (method, path_regex, action, delay_seconds, times_left, rate, seed) "
        "values (%s, %s, %s, %s, %s, %s, %s) returning id",
        (rule.method.upper(), rule.path_regex, rule.action, rule.delay_seconds, rule.times, rule.rate, rule.seed),
    ).fetchone()[0]


def clear_faults(conn: psycopg.Connection) -> None:
    conn.execute(f"delete from {META_SCHEMA}.fault_rules")


def list_faults(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(f"select * from {META_SCHEMA}.fault_rules order by id").fetchall()


def next_fault(conn: psycopg.Connection, method: str, path: str) -> FaultRule | None:
    """The fault this call gets, if any: the first matching rule that fires (its counters move on)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rules = cursor.execute(f"select * from {META_SCHEMA}.fault_rules order by id for update").fetchall()
    for rule in rules:
        if rule["method"] not in {"*", method.upper()} or not re.search(rule["path_regex"], path):
            continue
        fires = rule["rate"] is None or random.Random(f"{rule['seed']}:{rule['matched']}").random() < rule["rate"]
        times_left = rule["times_left"] - 1 if fires and rule["times_left"] is not None else rule["times_left"]
        if times_left is not None and times_left <= 0:
            conn.execute(f"delete from {META_SCHEMA}.fault_rules where id = %s", (rule["id"],))
        else:
            conn.execute(f"update {META_SCHEMA}.fault_rules set matched = matched + 1, times_left = %s where id = %s",
                         (times_left, rule["id"]))
        if fires:
            return FaultRule(rule["method"], rule["path_regex"], rule["action"], rule["delay_seconds"])
    return None
