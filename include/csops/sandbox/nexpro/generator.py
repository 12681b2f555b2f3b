"""Fill the Nexpro sandbox database with a deterministic world of companies using the product.

Each (company, day) is generated from its own random stream, seeded by (seed, company, day). A world is
planned once for (accounts, days, seed, end date); when a later run asks for the same world with a later
end date, the days in between are appended, as the live product would have recorded them, instead of
rebuilding. Rows are written with COPY in batches, so memory stays flat whatever the size.

The product follows the world's lifecycle (`csops.sandbox.world`). A tenant's plan is `plan_on` the day:
a plan change, up or down, closes its `tenant_plans` row (`ended_on`, exclusive) and opens the next, and
moves `tenants.plan_id`. On its last day of service a cancelling tenant becomes `status = 'cancelled'`
with `cancelled_on` set (that day); its `tenant_plans` row ends the day after. Nothing is recorded while a
tenant is cancelled. A reactivated tenant is 'active' again (`cancelled_on` null) with a new
`tenant_plans` row, and its users come back with a steadier pattern. Every such change moves the row's
`updated_at` to the moment it happened, so a database holds each tenant as it was on the last day
generated, and extending it to later days applies the changes of those days as updates.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources

import psycopg

from csops.sandbox.world import (
    PLANS,
    PLANS_BY_CODE,
    Company,
    WorldParams,
    contract_spans,
    in_service,
    plan_companies,
    plan_on,
)

log = logging.getLogger(__name__)

FEATURES_BY_TIER = {
    "minimal": ("webinar_create", "invite_send"),
    "basic": ("registration_form", "reminder_email", "chat", "recording", "qa"),
    "advanced": ("poll", "survey", "on_demand_replay", "analytics_export", "crm_integration",
                 "custom_branding", "api_access"),
}
# Which feature tiers each persona reaches for, with weights.
PERSONA_FEATURE_TIERS = {
    "thriving": {"minimal": 1, "basic": 3, "advanced": 3},
    "steady": {"minimal": 1, "basic": 4, "advanced": 0.05},
    "declining": {"minimal": 2, "basic": 3, "advanced": 0.3},
    "churn_bound": {"minimal": 3, "basic": 0.6, "advanced": 0},
    "expanding": {"minimal": 1, "basic": 3, "advanced": 2},
    "onboarding_stalled": {"minimal": 4, "basic": 0.3, "advanced": 0},
}
# Webinars a month at full activity, share of users logging in on a weekday, NPS (mean, spread).
PERSONA_HABITS = {
    "thriving": (7.0, 0.55, (9.0, 0.9)),
    "steady": (3.5, 0.35, (7.8, 1.2)),
    "declining": (4.5, 0.40, (6.5, 1.6)),
    "churn_bound": (3.0, 0.35, (4.0, 2.0)),
    "expanding": (12.0, 0.60, (9.0, 0.9)),
    "onboarding_stalled": (0.5, 0.30, (6.0, 1.5)),
}
SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
            "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水")
GIVEN_NAMES = ("翔太", "美咲", "大輔", "陽子", "健一", "彩", "拓也", "由美", "直樹", "恵", "亮", "さくら",
               "誠", "真由美", "隆", "愛", "浩二", "千尋", "和也", "舞")
WEBINAR_TOPICS = ("新製品発表会", "導入事例セミナー", "業界動向解説", "ユーザー会", "採用説明会", "オンライン研修",
                  "決算説明会", "ハンズオン講座", "パートナー向け説明会", "カスタマーサクセス勉強会")
TOKYO_OFFSET = timedelta(hours=9)

COLUMNS = {
    "plans": ("plan_id", "plan_code", "plan_name", "webinars_per_month_limit", "attendees_per_webinar_limit",
              "storage_gb_limit", "monthly_price_jpy", "created_at", "updated_at"),
    "tenants": ("tenant_id", "tenant_code", "company_name", "industry", "plan_id", "status",
                "contract_started_on", "cancelled_on", "created_at", "updated_at"),
    "tenant_plans": ("tenant_plan_id", "tenant_id", "plan_id", "started_on", "ended_on", "created_at",
                     "updated_at"),
    "users": ("user_id", "tenant_id", "email", "display_name", "role", "is_active", "created_at", "updated_at"),
    "login_events": ("login_event_id", "user_id", "tenant_id", "logged_in_at", "user_agent", "created_at",
                     "updated_at"),
    "webinars": ("webinar_id", "tenant_id", "host_user_id", "title", "webinar_type", "status",
                 "scheduled_start_at", "started_at", "ended_at", "created_at", "updated_at"),
    "registrations": ("registration_id", "webinar_id", "tenant_id", "attendee_email", "registered_at",
                      "attended", "created_at", "updated_at"),
    "viewing_sessions": ("viewing_session_id", "registration_id", "webinar_id", "tenant_id", "joined_at",
                         "left_at", "watch_seconds", "device", "created_at", "updated_at"),
    "feature_events": ("feature_event_id", "tenant_id", "user_id", "feature_key", "occurred_at", "created_at",
                       "updated_at"),
    "nps_responses": ("nps_response_id", "tenant_id", "user_id", "score", "comment", "responded_at",
                      "created_at", "updated_at"),
    "data_transfer_daily": ("tenant_id", "usage_date", "bytes_transferred", "storage_bytes", "created_at",
                            "updated_at"),
}
ID_COLUMNS = {table: columns[0] for table, columns in COLUMNS.items() if table != "data_transfer_daily"}
FLUSH_ROWS = 50_000
COLLAPSE_DAYS = 60  # a churn-bound company's usage collapses over this many days before it cancels


def activity(company: Company, day: date, params: WorldParams) -> float:
    """How active the company is on `day` (a day of service), 0..~1.6, before weekday effects."""
    t = (day - params.start_date).days / max(params.days - 1, 1)
    back = company.reactivated_on is not None and day >= company.reactivated_on
    tenure = (day - (company.reactivated_on if back else company.contract_started_on)).days
    ramp = min(1.0, 0.35 + tenure / 45)  # every new (or returning) customer takes a few weeks to get going
    if back:
        return 0.7 * ramp  # a returning customer uses the basics, steadily
    match company.persona:
        case "thriving":
            level = 1.0 + 0.25 * t
        case "steady":
            level = 0.75
        case "declining":
            level = max(0.2, 1.0 - 0.8 * t)
        case "churn_bound":  # collapses over the 60 days before its last day of service
            level = max(0.03, 0.8 * min(1.0, (company.cancelled_on - day).days / COLLAPSE_DAYS))
        case "expanding":
            level = 1.0 + 0.6 * t
        case "onboarding_stalled":
            return 0.7 if tenure < 10 else 0.04
        case _:
            raise ValueError(f"unknown persona {company.persona!r}")
    return level * ramp


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def tokyo_time(day: date, rng: random.Random, start_hour: int = 9, end_hour: int = 19) -> datetime:
    """A UTC timestamp during Tokyo business hours on `day`."""
    seconds = rng.randint(start_hour * 3600, end_hour * 3600 - 1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - TOKYO_OFFSET + timedelta(seconds=seconds)


@dataclass
class Writer:
    """Buffers generated rows per table and flushes them with COPY."""

    connection: psycopg.Connection
    next_ids: dict[str, int]

    def __post_init__(self) -> None:
        self.buffers: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        self.written: dict[str, int] = dict.fromkeys(COLUMNS, 0)

    def new_id(self, table: str) -> int:
        self.next_ids[table] += 1
        return self.next_ids[table]

    def add(self, table: str, row: tuple) -> None:
        buffer = self.buffers[table]
        buffer.append(row)
        if len(buffer) >= FLUSH_ROWS:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.buffers):
            rows = self.buffers[name]
            if not rows:
                continue
            columns = ", ".join(COLUMNS[name])
            with self.connection.cursor().copy(f"copy {name} ({columns}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            self.written[name] += len(rows)
            rows.clear()


def generate_company_day(writer: Writer, company: Company, day: date, params: WorldParams,
                         user_ids: list[int]) -> None:
    if not in_service(company, day):
        return
    rng = random.Random(f"{params.seed}:{company.company_key}:{day.isoformat()}")
    webinars_per_month, login_share, (nps_mean, nps_spread) = PERSONA_HABITS[company.persona]
    weekday = day.weekday() < 5
    level = activity(company, day, params) * (1.0 if weekday else 0.12)
    tenant_id = company.nexpro_tenant_id
    plan = PLANS_BY_CODE[plan_on(company, day)]
    ending_of_day = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC) - TOKYO_OFFSET

    active_users = [user_id for user_id in user_ids if rng.random() < login_share * min(level, 1.2)]
    for user_id in active_users:
        for _ in range(1 + (rng.random() < 0.3)):
            at = tokyo_time(day, rng, 8, 21)
            writer.add("login_events", (writer.new_id("login_events"), user_id, tenant_id, at,
                                        rng.choice(("Chrome", "Edge", "Safari", "Firefox")), at, at))

    tiers = PERSONA_FEATURE_TIERS[company.persona]
    for _ in range(poisson(rng, 4.0 * level)):
        tier = rng.choices(list(tiers), list(tiers.values()))[0]
        at = tokyo_time(day, rng)
        writer.add("feature_events", (writer.new_id("feature_events"), tenant_id, rng.choice(user_ids),
                                      rng.choice(FEATURES_BY_TIER[tier]), at, at, at))

    watch_seconds_today, recordings_gb = 0, 0.0
    for _ in range(poisson(rng, webinars_per_month / 21 * level)):
        webinar_id = writer.new_id("webinars")
        scheduled = tokyo_time(day, rng, 10, 18).replace(minute=rng.choice((0, 30)), second=0)
        webinar_type = "on_demand" if rng.random() < 0.1 else "live"
        status = "cancelled" if rng.random() < 0.07 else "held"
        duration = timedelta(minutes=rng.choice((30, 45, 60, 90)))
        started = scheduled if status == "held" else None
        ended = scheduled + duration if status == "held" else None
        created = scheduled - timedelta(hours=rng.randint(1, 8))
        writer.add("webinars", (webinar_id, tenant_id, rng.choice(user_ids),
                                f"{rng.choice(WEBINAR_TOPICS)} {day:%m/%d}", webinar_type, status,
                                scheduled, started, ended, created, ended or created))
        writer.add("feature_events", (writer.new_id("feature_events"), tenant_id, rng.choice(user_ids),
                                      "webinar_create", created, created, created))
        if status == "cancelled":
            continue
        recordings_gb += rng.uniform(0.3, 1.5)
        cap = plan.attendees_per_webinar_limit
        registrants = min(cap, max(1, int(company.attendee_base * min(level, 1.3) * rng.uniform(0.7, 1.3)
                                             * params.attendee_scale)))
        for _ in range(registrants):
            registration_id = writer.new_id("registrations")
            registered = created + (scheduled - created) * rng.random()
            attended = rng.random() < 0.58
            email = f"guest{rng.randrange(company.attendee_base * 3 + 10)}@{company.company_key.lower()}.example.jp"
            writer.add("registrations", (registration_id, webinar_id, tenant_id, email, registered, attended,
                                         registered, ended if attended else registered))
            if not attended:
                continue
            for _ in range(1 + (rng.random() < 0.15)):
                joined = scheduled + timedelta(seconds=rng.randint(0, 900))
                watched = int(duration.total_seconds() * rng.uniform(0.2, 0.95))
                left = joined + timedelta(seconds=watched)
                watch_seconds_today += watched
                writer.add("viewing_sessions", (writer.new_id("viewing_sessions"), registration_id, webinar_id,
                                                tenant_id, joined, left, watched,
                                                rng.choice(("pc", "pc", "mobile", "tablet")), left, left))

    for _ in range(poisson(rng, len(user_ids) * 0.004)):
        score = max(0, min(10, round(rng.gauss(nps_mean, nps_spread))))
        at = tokyo_time(day, rng)
        writer.add("nps_responses", (writer.new_id("nps_responses"), tenant_id, rng.choice(user_ids), score,
                                     None, at, at, at))

    storage_bytes = int(company_storage_gb(company, day, params) * 1024**3 + recordings_gb * 1024**3)
    writer.add("data_transfer_daily", (tenant_id, day, int(watch_seconds_today * 250_000 * rng.uniform(0.8, 1.2)),
                                       storage_bytes, ending_of_day, ending_of_day))


def company_storage_gb(company: Company, day: date, params: WorldParams) -> float:
    """Storage grows with tenure; expanding companies fill most of their plan's storage."""
    plan = PLANS_BY_CODE[plan_on(company, day)]
    tenure = max((day - company.contract_started_on).days, 0)
    share = 0.85 if company.persona == "expanding" else 0.25
    return plan.storage_gb_limit * share * min(1.0, tenure / 365 + 0.2)


def midnight(day: date) -> datetime:
    """The first moment (UTC) of the Tokyo date `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - TOKYO_OFFSET


def day_end(day: date) -> datetime:
    """The last minute (UTC) of the Tokyo date `day`."""
    return midnight(day) + timedelta(hours=23, minutes=59)


@dataclass(frozen=True)
class PlanPeriod:
    plan_code: str
    started_on: date
    ended_on: date | None  # exclusive
    closed_at: datetime | None  # when the period was closed (a plan change, or the end of the last service day)


def plan_periods(company: Company) -> list[PlanPeriod]:
    """The tenant's plan history: one period per plan per contract span."""
    periods = []
    for start, last_day in contract_spans(company):
        stop = last_day + timedelta(days=1) if last_day else None
        closed = day_end(last_day) if last_day else None
        change = company.plan_changed_on
        if change is not None and start < change and (stop is None or change < stop):
            periods.append(PlanPeriod(plan_on(company, start), start, change, midnight(change)))
            periods.append(PlanPeriod(plan_on(company, change), change, stop, closed))
        else:
            periods.append(PlanPeriod(plan_on(company, start), start, stop, closed))
    return periods


def tenant_rows(company: Company, through: date) -> tuple[tuple, list[tuple]]:
    """The tenant and its tenant_plans rows as they stand at the end of `through` (a Tokyo date)."""
    signed = midnight(company.contract_started_on)
    status, cancelled_on, updated = "active", None, signed
    if company.plan_changed_on is not None and company.plan_changed_on <= through:
        updated = max(updated, midnight(company.plan_changed_on))
    if company.cancelled_on is not None and company.cancelled_on <= through:
        status, cancelled_on, updated = "cancelled", company.cancelled_on, max(updated, day_end(company.cancelled_on))
    if company.reactivated_on is not None and company.reactivated_on <= through:
        status, cancelled_on, updated = "active", None, max(updated, midnight(company.reactivated_on))
    tenant = (company.nexpro_tenant_id, company.company_key.lower(), company.company_name, company.industry,
              PLANS_BY_CODE[plan_on(company, through)].plan_id, status, company.contract_started_on, cancelled_on,
              signed, updated)
    plans = []
    for number, period in enumerate(plan_periods(company), start=1):
        created = midnight(period.started_on)
        if number > 1 and period.started_on > through:
            break
        closed = period.closed_at is not None and (period.closed_at + TOKYO_OFFSET).date() <= through
        plans.append((company.nexpro_tenant_id * 10 + number, company.nexpro_tenant_id,
                      PLANS_BY_CODE[period.plan_code].plan_id, period.started_on, period.ended_on if closed else None,
                      created, period.closed_at if closed else created))
    return tenant, plans


def write_reference_rows(writer: Writer, companies: list[Company], params: WorldParams,
                         through: date) -> dict[str, list[int]]:
    """Plans, tenants (as of `through`), their plan history and users: rows that exist before any activity."""
    created = datetime.combine(params.start_date - timedelta(days=1000), datetime.min.time(), tzinfo=UTC)
    for plan in PLANS:
        writer.add("plans", (plan.plan_id, plan.plan_code, plan.plan_name, plan.webinars_per_month_limit,
                             plan.attendees_per_webinar_limit, plan.storage_gb_limit, plan.monthly_price_jpy,
                             created, created))
    for company in companies:
        tenant, plans = tenant_rows(company, through)
        writer.add("tenants", tenant)
        for row in plans:
            writer.add("tenant_plans", row)
    writer.flush()  # users reference tenants: every tenant is in before the first batch of users
    users_by_company = {}
    for company in companies:
        rng = random.Random(f"{params.seed}:{company.company_key}:reference")
        signed = midnight(company.contract_started_on)
        user_ids = []
        for index in range(company.user_count):
            user_id = writer.new_id("users")
            role = "owner" if index == 0 else rng.choice(("admin", "host", "host", "member", "member"))
            name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}"
            joined = signed + timedelta(days=rng.randint(0, 20))
            writer.add("users", (user_id, company.nexpro_tenant_id,
                                 f"user{index + 1}@{company.company_key.lower()}.example.jp", name, role, True,
                                 joined, joined))
            user_ids.append(user_id)
        users_by_company[company.company_key] = user_ids
    return users_by_company


def apply_lifecycle_changes(connection: psycopg.Connection, companies: list[Company], since: date,
                            through: date) -> int:
    """Bring tenants and tenant_plans from their state at the end of `since` to the end of `through`:
    plan changes, cancellations and reactivations of the days between, with `updated_at` moved to the
    moment each happened (the update trigger is held off so it does not stamp the seeding time)."""
    tenants, plans = [], []
    for company in companies:
        before, after = tenant_rows(company, since), tenant_rows(company, through)
        if after[0] != before[0]:
            tenants.append(after[0])
        plans.extend(set(after[1]) - set(before[1]))
    for table, rows in (("tenants", tenants), ("tenant_plans", plans)):
        if not rows:
            continue
        columns = COLUMNS[table]
        assignments = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
        connection.execute(f"alter table {table} disable trigger touch_updated_at")
        connection.cursor().executemany(
            f"insert into {table} ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))}) "
            f"on conflict ({columns[0]}) do update set {assignments}", rows)
        connection.execute(f"alter table {table} enable trigger touch_updated_at")
    return len(tenants) + len(plans)


def apply_schema(connection: psycopg.Connection) -> None:
    connection.execute(resources.files(__package__).joinpath("schema.sql").read_text())
    connection.execute("""
        create schema if not exists sandbox;
        create table if not exists sandbox.world (
            accounts integer not null, days integer not null, seed integer not null,
            planned_end_date date not null, generated_through date not null,
            attendee_scale double precision not null default 1
        )
    """)


def reset(connection: psycopg.Connection) -> None:
    connection.execute("drop schema if exists public cascade; drop schema if exists sandbox cascade; "
                       "create schema public")


def current_world(connection: psycopg.Connection) -> tuple[WorldParams, date] | None:
    """The world the database holds (as planned) and the last day generated, if any."""
    if connection.execute("select to_regclass('sandbox.world')").fetchone()[0] is None:
        return None
    # A database generated before attendee_scale existed was generated at 1.0.
    connection.execute("alter table sandbox.world add column if not exists attendee_scale double precision "
                       "not null default 1")
    row = connection.execute(
        "select accounts, days, seed, planned_end_date, generated_through, attendee_scale from sandbox.world"
    ).fetchone()
    if row is None:
        return None
    accounts, days, seed, planned_end_date, generated_through, attendee_scale = row
    return (WorldParams(accounts=accounts, days=days, seed=seed, end_date=planned_end_date,
                        attendee_scale=attendee_scale), generated_through)


def build_world(url: str, params: WorldParams, progress: Callable[[str], None] = log.info, *,
                through: date | None = None) -> dict:
    """Make the Nexpro database hold `params`' world through `through` (default: its end date), doing as
    little work as possible.

    Same world already there: nothing to do. Same world ending earlier: append the missing days (the
    product kept running) and apply the tenants' lifecycle changes of those days. Anything else: rebuild
    from scratch.
    """
    started = time.monotonic()
    last_day = through or params.end_date
    with psycopg.connect(url) as connection:
        existing = current_world(connection)
        planned, generated_through = existing if existing else (None, None)
        same_world = (planned is not None
                      and (planned.accounts, planned.days, planned.seed, planned.attendee_scale)
                      == (params.accounts, params.days, params.seed, params.attendee_scale)
                      and planned.end_date <= params.end_date)
        if same_world and generated_through >= last_day:
            progress(f"Nexpro sandbox already holds this world ({params.accounts} companies, "
                     f"{planned.start_date}..{generated_through}); reusing it")
            return {"action": "reused", "rows": {}, "world": planned}
        if same_world:
            params, first_day, action = planned, generated_through + timedelta(days=1), "extended"
        else:
            reset(connection)
            apply_schema(connection)
            first_day, action = params.start_date, "generated"
        companies = plan_companies(params)
        next_ids = {}
        for table, column in ID_COLUMNS.items():
            next_ids[table] = connection.execute(f"select coalesce(max({column}), 0) from {table}").fetchone()[0]
        writer = Writer(connection, next_ids)
        if action == "generated":
            users = write_reference_rows(writer, companies, params, last_day)
            writer.flush()  # parents first: activity rows reference tenants and plans
        else:
            changed = apply_lifecycle_changes(connection, companies, generated_through, last_day)
            progress(f"Nexpro sandbox: {changed} tenant and plan rows changed by the lifecycle since "
                     f"{generated_through}")
            users = dict(connection.execute(
                "select 'C' || lpad((tenant_id - 10000)::text, 5, '0'), array_agg(user_id order by user_id) "
                "from users group by tenant_id").fetchall())
        day, total_days = first_day, (last_day - first_day).days + 1
        while day <= last_day:
            for company in companies:
                generate_company_day(writer, company, day, params, users[company.company_key])
            done = (day - first_day).days + 1
            if done % 30 == 0 or day == last_day:
                progress(f"Nexpro sandbox: {done}/{total_days} days generated "
                         f"({sum(writer.written.values()) + sum(map(len, writer.buffers.values())):,} rows)")
            day += timedelta(days=1)
        writer.flush()
        connection.execute("delete from sandbox.world")
        connection.execute("insert into sandbox.world (accounts, days, seed, planned_end_date, generated_through, "
                           "attendee_scale) values (%s, %s, %s, %s, %s, %s)",
                           (params.accounts, params.days, params.seed, params.end_date, last_day,
                            params.attendee_scale))
        connection.execute("analyze")
    progress(f"Nexpro sandbox {action} in {time.monotonic() - started:.1f}s: "
             + ", ".join(f"{table} {count:,}" for table, count in writer.written.items() if count))
    return {"action": action, "rows": writer.written, "world": params}
