"""Fill the board sandbox with the billing of the shared world's companies, deterministically.

Each company of the world (`world.plan_companies`) is a board client (`id` = its `board_client_id`) with a
contract project for its plan, billed from the day its contract started (also before the product
history window): monthly in arrears (定期, invoice dated the last day of the service month) or, for some
thriving and steady companies, yearly in advance (annual prepaid: one invoice for twelve months with its
service period). A service month is billed at the plan in force at its end (`world.plan_on`), so a plan
change, up or down, changes the plan's line item from the month it happens in; an upgrade that starts
after the world's end date is billed only from then. Some companies add options (extra storage,
dedicated support) for a while and remove some later (at least one removal falls in the last twelve
months), and some buy a one-off paid service (有償サービス). Two more clients have no Salesforce account.
One credit note (negative invoice) exists. Every invoice moves from 未請求 (drafted) to 請求済 (sent) to
入金済 (paid a few weeks later), or rarely to 回収不能.

Every record is planned from its own random stream, seeded by (seed, company, record), with the moments
it was created and changed; the data "as of" a day holds each record created by then, in the state it had
then. Ids follow creation order. So a board seeded to D1 and extended to D2 equals one seeded to D2.

A company's contract spans (`world.contract_spans`) decide its billing: a cancelling company is billed
through the month of `cancelled_on` (its last day of service ends that month's service period), and its
contract project is marked 完了 that day. A reactivated company gets a new contract project, billed from
the month of `reactivated_on`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg

from csops.sandbox.board.schema import (
    DATA_DDL,
    DATA_TABLES,
    INVOICE_DRAFT,
    INVOICE_PAID,
    INVOICE_SENT,
    INVOICE_UNCOLLECTIBLE,
    META_DDL,
    ORDER_CONFIRMED,
    ORDER_FINISHED,
    SCHEMA,
    TAX_RATE,
    TIMING_ONE_OFF,
    TIMING_RECURRING,
)
from csops.sandbox.nexpro.generator import tokyo_time
from csops.sandbox.world import (
    PLANS_BY_CODE,
    Company,
    WorldParams,
    company_name,
    contract_spans,
    in_service,
    plan_companies,
    plan_on,
)

log = logging.getLogger(__name__)

JST_OFFSET = timedelta(hours=9)
FIRST_PROJECT_ID = 200_001
FIRST_INVOICE_ID = 3_000_001
ANNUAL_PERSONAS = {"thriving": 0.4, "steady": 0.3}
# (description, monthly price): options a company may add to its plan for a while.
OPTIONS = (("追加ストレージ 100GB", 10_000), ("専任サポート", 30_000))
PAID_SERVICES = (("導入支援サービス（初期設定・トレーニング）", 150_000), ("データ移行サービス", 300_000),
                 ("運用コンサルティング", 500_000))
EXTRA_CLIENTS = 2


@dataclass(frozen=True)
class Line:
    description: str
    unit_price: int
    quantity: int
    unit: str

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class ClientPlan:
    client_id: int
    name: str
    management_no: str
    created_at: datetime


@dataclass(frozen=True)
class ProjectPlan:
    key: str
    client_id: int
    name: str
    invoice_timing: int
    estimate_date: date
    order_date: date
    billing_start_date: date
    created_at: datetime
    billing_end_date: date | None = None
    ended_at: datetime | None = None  # when the project was marked 完了 (the contract ended)
    changed_at: datetime | None = None  # a later change to the contract (a plan change)


@dataclass(frozen=True)
class InvoicePlan:
    key: str
    project_key: str
    client_id: int
    invoice_date: date
    payment_due_date: date
    service_period_start: date | None
    service_period_end: date | None
    lines: tuple[Line, ...]
    drafted_at: datetime
    sent_at: datetime
    settled_at: datetime  # paid, or written off
    settled_status: int

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def tax(self) -> int:
        # Rounded toward zero to the yen, so a credit note's tax mirrors an invoice's.
        return int(Decimal(self.subtotal) * TAX_RATE / 100)


@dataclass(frozen=True)
class BoardPlan:
    """Everything billed in the world through one day (records created after it are not in it)."""

    clients: list[ClientPlan]
    projects: list[ProjectPlan]
    invoices: list[InvoicePlan]


def jst_date(moment: datetime) -> date:
    return (moment + JST_OFFSET).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return add_months(month_start(day), 1) - timedelta(days=1)


def add_months(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    following = date(year + 1, 1, 1) if month == 11 else date(year, month + 2, 1)
    return date(year, month + 1, min(day.day, (following - timedelta(days=1)).day))


def is_annual(company: Company, params: WorldParams) -> bool:
    """Annual prepaid contracts: some thriving and steady companies; never one that changes plan mid-way."""
    share = ANNUAL_PERSONAS.get(company.persona, 0.0)
    return (company.plan_change is None
            and random.Random(f"{params.seed}:{company.company_key}:annual").random() < share)


def project_key(company: Company, span: int) -> str:
    """The contract project of the company's `span`th contract (0: the first; a reactivation starts another)."""
    return f"{company.company_key}:contract" + (f":{span + 1}" if span else "")


OptionWindow = tuple[str, int, date, date | None]  # (description, monthly price, first month, first month without)


def option_windows(company: Company, params: WorldParams) -> list[OptionWindow]:
    """Options the company added (and maybe removed later)."""
    rng = random.Random(f"{params.seed}:{company.company_key}:options")
    windows = []
    for description, price in OPTIONS:
        if rng.random() < (0.35 if company.persona in ("thriving", "expanding") else 0.15):
            added = month_start(add_months(company.contract_started_on, rng.randint(1, 8)))
            removed = month_start(add_months(added, rng.randint(3, 12))) if rng.random() < 0.4 else None
            windows.append((description, price, added, removed))
    return windows


def plan_options(companies: list[Company], params: WorldParams) -> dict[str, list[OptionWindow]]:
    """Every company's option windows; when chance removed no option in the last twelve months, the first
    long-standing monthly customer removes one two months before the end."""
    options = {c.company_key: option_windows(c, params) for c in companies}
    end, year_ago = params.end_date, params.end_date - timedelta(days=365)
    if any(removed is not None and year_ago < removed <= end for windows in options.values()
           for *_, removed in windows):
        return options
    removed = month_start(end - timedelta(days=60))
    for company in companies:
        if (is_annual(company, params) or company.cancelled_on is not None
                or company.contract_started_on > end - timedelta(days=240)):
            continue
        windows = options[company.company_key]
        open_window = next((w for w in windows if w[3] is None and w[2] < removed), None)
        if open_window is not None:
            windows[windows.index(open_window)] = (*open_window[:3], removed)
        else:
            description, price = OPTIONS[0]
            windows.append((description, price, month_start(end - timedelta(days=240)), removed))
        break
    return options


def company_lines(company: Company, options: list[OptionWindow], service_month: date) -> tuple[Line, ...]:
    plan = PLANS_BY_CODE[plan_on(company, month_end(service_month))]
    lines = [Line(f"{plan.plan_name}プラン 月額利用料（{service_month:%Y年%m月分}）", plan.monthly_price_jpy, 1, "月")]
    for description, price, added, removed in options:
        if added <= service_month and (removed is None or service_month < removed):
            lines.append(Line(f"{description}（{service_month:%Y年%m月分}）", price, 1, "月"))
    return tuple(lines)


def invoice_timeline(rng: random.Random, company: Company, invoice_date: date, due: date,
                     drafted_on: date) -> tuple[datetime, datetime, datetime, int]:
    """When an invoice was drafted, sent and settled, and how it was settled (paid, or rarely written off)."""
    drafted_at = tokyo_time(drafted_on, rng)
    sent_at = tokyo_time(invoice_date, rng)
    risky = company.persona in ("churn_bound", "declining")
    if risky and rng.random() < 0.04:
        return drafted_at, sent_at, tokyo_time(due + timedelta(days=rng.randint(40, 70)), rng), INVOICE_UNCOLLECTIBLE
    late = rng.randint(0, 20) if risky and rng.random() < 0.3 else 0
    paid_on = due - timedelta(days=rng.randint(0, 20)) + timedelta(days=late)
    return drafted_at, sent_at, tokyo_time(max(paid_on, invoice_date + timedelta(days=3)), rng), INVOICE_PAID


def monthly_invoices(company: Company, params: WorldParams, options: list[OptionWindow],
                     through: date) -> list[InvoicePlan]:
    invoices = []
    for span, (start, end) in enumerate(contract_spans(company)):
        month = month_start(start)
        last = month_start(min(end, through + timedelta(days=10)) if end else through + timedelta(days=10))
        while month <= last:
            key = f"{company.company_key}:monthly:{month:%Y-%m}"
            rng = random.Random(f"{params.seed}:{key}")
            invoice_date = month_end(month)
            due = month_end(add_months(month, 1))
            timeline = invoice_timeline(rng, company, invoice_date, due, invoice_date - timedelta(days=3))
            invoices.append(InvoicePlan(key, project_key(company, span), company.board_client_id,
                                        invoice_date, due, max(month, start), min(invoice_date, end or invoice_date),
                                        company_lines(company, options, month), *timeline))
            month = add_months(month, 1)
    return invoices


def annual_invoices(company: Company, params: WorldParams, options: list[OptionWindow],
                    through: date) -> list[InvoicePlan]:
    invoices = []
    for span, (start, end) in enumerate(contract_spans(company)):
        period = start
        while period <= through + timedelta(days=10) and (end is None or period <= end):
            key = f"{company.company_key}:annual:{period.isoformat()}"
            rng = random.Random(f"{params.seed}:{key}")
            plan = PLANS_BY_CODE[plan_on(company, period)]
            period_end = add_months(period, 12) - timedelta(days=1)
            due = month_end(add_months(period, 1))
            line = Line(f"{plan.plan_name}プラン 年間利用料（{period:%Y/%m/%d}〜{period_end:%Y/%m/%d}）",
                        plan.monthly_price_jpy, 12, "ヶ月")
            timeline = invoice_timeline(rng, company, period, due, period - timedelta(days=5))
            invoices.append(InvoicePlan(key, project_key(company, span), company.board_client_id, period,
                                        due, period, period_end, (line,), *timeline))
            period = add_months(period, 12)
    return invoices


def contract_projects(company: Company, params: WorldParams) -> list[ProjectPlan]:
    """One contract project per contract span: marked 完了 on the last day of service; a plan change
    during the span changes it."""
    projects = []
    for span, (started, end) in enumerate(contract_spans(company)):
        key = project_key(company, span)
        rng = random.Random(f"{params.seed}:{key}")
        plan = PLANS_BY_CODE[plan_on(company, started)]
        change = company.plan_changed_on
        changed = (tokyo_time(change, rng) if change is not None and started < change and (end is None or change <= end)
                   else None)
        projects.append(ProjectPlan(
            key=key, client_id=company.board_client_id,
            name=f"{plan.plan_name}プラン 利用契約{'（年払い）' if is_annual(company, params) else ''}",
            invoice_timing=TIMING_RECURRING, estimate_date=started - timedelta(days=rng.randint(10, 30)),
            order_date=started, billing_start_date=started,
            created_at=tokyo_time(started - timedelta(days=rng.randint(31, 40)), rng),
            billing_end_date=end, ended_at=tokyo_time(end, rng) if end else None, changed_at=changed))
    return projects


def paid_service(company: Company, params: WorldParams) -> tuple[ProjectPlan, InvoicePlan] | None:
    """A one-off paid service (有償サービス) some companies buy after signing."""
    rng = random.Random(f"{params.seed}:{company.company_key}:paid-service")
    share = 0.5 if company.persona in ("thriving", "expanding", "onboarding_stalled") else 0.15
    if rng.random() >= share:
        return None
    description, price = rng.choice(PAID_SERVICES)
    ordered = company.contract_started_on + timedelta(days=rng.randint(3, 40))
    project = ProjectPlan(
        key=f"{company.company_key}:paid-service", client_id=company.board_client_id, name=description,
        invoice_timing=TIMING_ONE_OFF, estimate_date=ordered - timedelta(days=7), order_date=ordered,
        billing_start_date=ordered, billing_end_date=ordered, created_at=tokyo_time(ordered - timedelta(days=7), rng))
    invoice_date = month_end(ordered)
    due = month_end(add_months(ordered, 1))
    timeline = invoice_timeline(rng, company, invoice_date, due, invoice_date - timedelta(days=2))
    invoice = InvoicePlan(f"{project.key}:invoice", project.key, company.board_client_id, invoice_date, due, ordered,
                          ordered, (Line(description, price, 1, "式"),), *timeline)
    return project, invoice


def credit_note(companies: list[Company], params: WorldParams) -> InvoicePlan:
    """One credit note: half a month's plan fee refunded to a monthly customer billed for that month."""
    rng = random.Random(f"{params.seed}:credit-note")
    issued = params.start_date + timedelta(days=20)
    month = month_start(add_months(issued, -1))
    company = next(c for c in companies if not is_annual(c, params) and in_service(c, month)
                   and in_service(c, month_end(month)))
    plan = PLANS_BY_CODE[plan_on(company, month_end(month))]
    due = month_end(add_months(issued, 1))
    line = Line(f"{month:%Y年%m月分} 利用料の一部返金（障害補償）", -plan.monthly_price_jpy // 2, 1, "式")
    timeline = invoice_timeline(rng, company, issued, due, issued - timedelta(days=1))
    return InvoicePlan(f"{company.company_key}:credit-note", project_key(company, 0),
                       company.board_client_id, issued, due, month, month_end(month), (line,),
                       timeline[0], timeline[1], timeline[2], INVOICE_PAID)


def extra_clients(params: WorldParams) -> list[tuple[ClientPlan, ProjectPlan, InvoicePlan]]:
    """Clients billed in board with no Salesforce account and no Nexpro tenant (ids beyond the world's)."""
    records = []
    for number in range(EXTRA_CLIENTS):
        client_id = 500_001 + params.accounts + number
        rng = random.Random(f"{params.seed}:extra-client:{number}")
        ordered = params.start_date + timedelta(days=10 + 20 * number)
        client = ClientPlan(client_id, company_name(params.accounts * 3 + number), f"X{number + 1:05d}",
                            tokyo_time(ordered - timedelta(days=14), rng))
        description, price = PAID_SERVICES[number % len(PAID_SERVICES)]
        key = f"extra-{number}"
        project = ProjectPlan(f"{key}:project", client_id, description, TIMING_ONE_OFF, ordered - timedelta(days=7),
                              ordered, ordered, tokyo_time(ordered - timedelta(days=7), rng), billing_end_date=ordered)
        invoice_date, due = month_end(ordered), month_end(add_months(ordered, 1))
        invoice = InvoicePlan(f"{key}:invoice", project.key, client_id, invoice_date, due, ordered, ordered,
                              (Line(description, price, 1, "式"),), tokyo_time(invoice_date - timedelta(days=2), rng),
                              tokyo_time(invoice_date, rng), tokyo_time(due - timedelta(days=5), rng), INVOICE_PAID)
        records.append((client, project, invoice))
    return records


def plan_board(params: WorldParams, through: date) -> BoardPlan:
    """Every client, project and invoice created by `through` (a Japan-time day), in creation order."""
    companies = plan_companies(params)
    options = plan_options(companies, params)
    clients, projects, invoices = [], [], []
    for company in companies:
        rng = random.Random(f"{params.seed}:{company.company_key}:client")
        created = tokyo_time(company.contract_started_on - timedelta(days=rng.randint(41, 60)), rng)
        clients.append(ClientPlan(company.board_client_id, company.company_name, company.company_key, created))
        projects.extend(contract_projects(company, params))
        billed = annual_invoices if is_annual(company, params) else monthly_invoices
        invoices.extend(billed(company, params, options[company.company_key], through))
        if (service := paid_service(company, params)) is not None:
            projects.append(service[0])
            invoices.append(service[1])
    invoices.append(credit_note(companies, params))
    for client, project, invoice in extra_clients(params):
        clients.append(client)
        projects.append(project)
        invoices.append(invoice)
    return BoardPlan(
        clients=sorted((c for c in clients if jst_date(c.created_at) <= through), key=lambda c: c.client_id),
        projects=sorted((p for p in projects if jst_date(p.created_at) <= through),
                        key=lambda p: (p.created_at, p.client_id, p.key)),
        invoices=sorted((i for i in invoices if jst_date(i.drafted_at) <= through),
                        key=lambda i: (i.drafted_at, i.client_id, i.key)))


# --- Rows as of a day ------------------------------------------------------------------------------------


def happened(moment: datetime | None, through: date) -> bool:
    return moment is not None and jst_date(moment) <= through


def client_row(client: ClientPlan) -> tuple:
    number = client.client_id % 10_000
    return (client.client_id, client.name, client.name, client.management_no,
            f"03-{5000 + number % 4000:04d}-{number:04d}", f"{100 + number % 900:03d}-{number:04d}",
            f"東京都千代田区丸の内{number % 3 + 1}-{number % 9 + 1}", client.created_at, client.created_at)


def project_row(project_id: int, project: ProjectPlan, through: date) -> tuple:
    ended = happened(project.ended_at, through)
    updated = max([project.created_at] + [m for m in (project.changed_at, project.ended_at) if happened(m, through)])
    return (project_id, project.client_id, f"P{project_id:07d}", project.name,
            ORDER_FINISHED if ended else ORDER_CONFIRMED, project.invoice_timing, project.estimate_date,
            project.order_date, project.billing_start_date, project.billing_end_date if ended or
            project.invoice_timing == TIMING_ONE_OFF else None, project.created_at, updated)


def invoice_row(invoice_id: int, project_id: int, invoice: InvoicePlan, through: date) -> tuple:
    if happened(invoice.settled_at, through):
        status, updated = invoice.settled_status, invoice.settled_at
    elif happened(invoice.sent_at, through):
        status, updated = INVOICE_SENT, invoice.sent_at
    else:
        status, updated = INVOICE_DRAFT, invoice.drafted_at
    paid_date = jst_date(invoice.settled_at) if status == INVOICE_PAID else None
    return (invoice_id, project_id, invoice.client_id, f"{invoice.invoice_date:%Y%m%d}-{invoice_id % 100_000:05d}",
            invoice.invoice_date, invoice.payment_due_date, paid_date, status, invoice.service_period_start,
            invoice.service_period_end, invoice.subtotal, invoice.tax, invoice.subtotal + invoice.tax,
            invoice.drafted_at, updated)


def detail_rows(invoice_id: int, invoice: InvoicePlan) -> list[tuple]:
    return [(invoice_id * 100 + number, invoice_id, number, line.description, line.unit_price, line.quantity,
             line.unit, line.amount, TAX_RATE) for number, line in enumerate(invoice.lines, start=1)]


def board_rows(plan: BoardPlan, through: date) -> dict[str, list[tuple]]:
    project_ids = {p.key: FIRST_PROJECT_ID + n for n, p in enumerate(plan.projects)}
    invoices, details = [], []
    for number, invoice in enumerate(plan.invoices):
        invoice_id = FIRST_INVOICE_ID + number
        invoices.append(invoice_row(invoice_id, project_ids[invoice.project_key], invoice, through))
        details.extend(detail_rows(invoice_id, invoice))
    return {"clients": [client_row(c) for c in plan.clients],
            "projects": [project_row(project_ids[p.key], p, through) for p in plan.projects],
            "invoices": invoices, "invoice_details": details}


# --- Writing ---------------------------------------------------------------------------------------------

COLUMNS = {
    "clients": ("id", "name", "name_disp", "management_no", "tel", "zip", "address", "created_at", "updated_at"),
    "projects": ("id", "client_id", "project_no", "name", "order_status", "invoice_timing", "estimate_date",
                 "order_date", "billing_start_date", "billing_end_date", "created_at", "updated_at"),
    "invoices": ("id", "project_id", "client_id", "invoice_no", "invoice_date", "payment_due_date", "paid_date",
                 "invoice_status", "service_period_start", "service_period_end", "subtotal", "tax", "total",
                 "created_at", "updated_at"),
    "invoice_details": ("id", "invoice_id", "sort_no", "description", "unit_price", "quantity", "unit", "amount",
                        "tax_rate"),
}


def upsert(connection: psycopg.Connection, table: str, rows: list[tuple]) -> int:
    """Write rows by id: new ones are inserted, changed ones updated, unchanged ones left alone."""
    columns = COLUMNS[table]
    connection.execute(f"create temp table incoming (like {SCHEMA}.{table} including defaults) on commit drop")
    with connection.cursor().copy(f"copy incoming ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    assignments = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    changed = " or ".join(f"{SCHEMA}.{table}.{c} is distinct from excluded.{c}" for c in columns[1:])
    written = connection.execute(
        f"insert into {SCHEMA}.{table} ({', '.join(columns)}) select {', '.join(columns)} from incoming order by id "
        f"on conflict (id) do update set {assignments} where {changed}").rowcount
    connection.execute("drop table incoming")
    return written


def current_world(connection: psycopg.Connection) -> tuple[WorldParams, date] | None:
    row = connection.execute(f"select accounts, days, seed, planned_end_date, generated_through from {SCHEMA}.world"
                             ).fetchone()
    if row is None:
        return None
    return WorldParams(accounts=row[0], days=row[1], seed=row[2], end_date=row[3]), row[4]


def seed_board(database_url: str, params: WorldParams, progress: Callable[[str], None] = log.info, *,
               through: date | None = None) -> dict:
    """Make the board sandbox hold `params`' world billed through `through` (default: its end date).

    The same world seeded that far already: nothing to do. The same world seeded to an earlier day (or
    planned with an earlier end date): the records and changes since are added. Another world: emptied and
    seeded afresh. Returns `{"action", "rows": {table: rows written}, "world", "through"}`.
    """
    started = time.monotonic()
    through = through or params.end_date
    with psycopg.connect(database_url) as connection:
        connection.execute(META_DDL)
        connection.execute(DATA_DDL)
        existing = current_world(connection)
        planned, seeded_through = existing if existing else (None, None)
        same_world = (planned is not None and (planned.accounts, planned.days, planned.seed)
                      == (params.accounts, params.days, params.seed) and planned.end_date <= params.end_date)
        if same_world and seeded_through >= through:
            progress(f"board sandbox already holds this world through {seeded_through}; reusing it")
            return {"action": "reused", "rows": {}, "world": planned, "through": seeded_through}
        if same_world:
            params, action = planned, "extended"
        else:
            connection.execute(f"truncate {', '.join(f'{SCHEMA}.{t}' for t in DATA_TABLES)}")
            action = "generated"
        rows = board_rows(plan_board(params, through), through)
        written = {table: upsert(connection, table, rows[table]) for table in COLUMNS}
        connection.execute(f"delete from {SCHEMA}.world")
        connection.execute(f"insert into {SCHEMA}.world values (%s, %s, %s, %s, %s)",
                           (params.accounts, params.days, params.seed, params.end_date, through))
    progress(f"board sandbox {action} through {through} in {time.monotonic() - started:.1f}s: "
             + ", ".join(f"{table} {count:,}" for table, count in written.items()))
    return {"action": action, "rows": written, "world": params, "through": through}
