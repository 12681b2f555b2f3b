"""Fill the Salesforce sandbox org with the shared world's customers, as a CS team would have kept it.

The org describes the same companies as the Nexpro sandbox (`world.plan_companies`): one Account per
company with its CSM, contacts and key persons, deals fitting the company's persona (the New deal at
contract start, renewals around anniversaries, upsells and cross-sells), CS activity over the history
(tasks, meetings, QBRs, meeting notes) and outcome goals with monthly results.

It follows the world's lifecycle. Every deal carries `Service_Start_Date__c`, when its revenue starts
(the contract start for New, the renewal date for Renewal, the plan change for an upgrade; a proposal
starts when it closes). A cancelling company gives notice: its renewal deal for `cancelled_on` goes
Closed Lost about 30 days before it (by the world's end date at the latest), the CSM's touches stop
over its last 90 days (nobody answers), its key persons leave 55 to 30 days before its last day, and the
Account becomes 'Former Customer' on `cancelled_on`. A reactivation is a New deal won on `reactivated_on`,
and the Account is a 'Customer' again with a new contract start and renewal date. An upgrade is won a week
before it starts (so one starting just after the end date is "won, not yet started"); plan changes, up or
down, move the Account's Annual_Contract_Value__c and Tier__c on the day they happen (`world.plan_on`).

Every record is planned as a timeline: the moment it was created and the changes it went through later
(a task completed on its due date, a deal closing, a key person leaving, a renewal date rolling over).
The org "as of" a day shows each record created by then, with the changes made by then applied. Records
are created either before the history starts (users, accounts, and what predates the first day) or on a
day of the history, from a random stream seeded by (seed, company, day), so they never depend on how
far the org was seeded. That is what makes extension exact: an org seeded to D1 and extended to D2
holds the same rows (same Ids, same values) as one seeded to D2 directly. Ids are drawn from each
object's sequence in creation order, so records the API creates later never collide with them.

Rows are written with COPY in batches; which record got which Id is kept in `sf_meta.seeded_record`,
and the seeded world in `sf_meta.world`.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from csops.sandbox.nexpro.generator import GIVEN_NAMES, SURNAMES, poisson, tokyo_time
from csops.sandbox.salesforce import store
from csops.sandbox.salesforce.objects import (
    BASE62,
    OBJECTS_BY_NAME,
    OPPORTUNITY_STAGES,
    TASK_STATUSES,
    id_sequence,
    make_id,
    table_name,
)
from csops.sandbox.salesforce.server import INTEGRATION_USERNAME  # the user the API server logs in as
from csops.sandbox.world import (
    PLANS_BY_CODE,
    SIGNED_BEFORE_START_DAYS,
    Company,
    WorldParams,
    anniversary,
    company_name,
    contract_spans,
    in_service,
    plan_companies,
    plan_on,
)

log = logging.getLogger(__name__)

INTEGRATION = "user:integration"
MANAGER = "user:manager"
TOKYO_OFFSET = timedelta(hours=9)
FLUSH_ROWS = 20_000
# Objects other records point at: their Ids stay in memory for the whole run.
REFERENCED_OBJECTS = ("User", "Account", "Contact", "Outcome_Goal__c")
# Account renewal dates keep rolling over this long after the world's planned end.
RENEWAL_HORIZON_YEARS = 10

# --- The rubric: growth potential by persona, contract-value bands, and the Tier matrix ------------------

GROWTH_POTENTIAL = {
    "thriving": "High", "expanding": "High", "steady": "Medium", "onboarding_stalled": "Medium",
    "declining": "Low", "churn_bound": "Low",
}
# Annual contract value (JPY) at or above which an account falls in the band.
CONTRACT_VALUE_BANDS = ((2_400_000, "High"), (960_000, "Medium"), (0, "Low"))
TIER_MATRIX = {
    # (contract value band, growth potential): tier
    ("High", "High"): "Tier 1", ("High", "Medium"): "Tier 1", ("High", "Low"): "Tier 2",
    ("Medium", "High"): "Tier 1", ("Medium", "Medium"): "Tier 2", ("Medium", "Low"): "Tier 3",
    ("Low", "High"): "Tier 2", ("Low", "Medium"): "Tier 3", ("Low", "Low"): "Tier 3",
}

# --- How each persona is looked after -------------------------------------------------------------------

CONTACTS_BY_SIZE = {"small": (2, 4), "mid": (3, 6), "large": (5, 8)}
EMPLOYEES_BY_SIZE = {"small": (10, 99), "mid": (100, 999), "large": (1_000, 5_000)}
KEY_PERSONS = {"thriving": (3, 4), "expanding": (3, 4), "steady": (2, 3), "declining": (1, 2),
               "churn_bound": (2, 3), "onboarding_stalled": (1, 2)}
# How many outcome goals a company defines: (counts, weights).
GOALS = {"thriving": ((1, 2, 3), (3, 4, 3)), "expanding": ((1, 2, 3), (3, 4, 3)),
         "steady": ((0, 1, 2), (2, 5, 3)), "declining": ((0, 1, 2), (4, 4, 2)),
         "churn_bound": ((0, 1, 2), (3, 5, 2)), "onboarding_stalled": ((0,), (1,))}
# Monthly actual ÷ target, drawn uniformly from this range.
ACHIEVEMENT = {"thriving": (0.82, 1.15), "expanding": (0.85, 1.2), "steady": (0.52, 0.78),
               "declining": (0.22, 0.48), "churn_bound": (0.1, 0.45), "onboarding_stalled": (0.2, 0.45)}
# Completed touchpoints a business day at full engagement.
TOUCH_RATES = {"thriving": 0.28, "expanding": 0.28, "steady": 0.13, "declining": 0.14, "churn_bound": 0.13,
               "onboarding_stalled": 0.8}
TIER_TOUCH = {"Tier 1": 1.3, "Tier 2": 1.0, "Tier 3": 0.6}
ONBOARDING_BURST_DAYS = 14
QUIET_DAYS = 60  # a cancelling company loses its key persons over its last 60 days of service
# A cancelling company stops answering its CSM this long before its last day: no completed touchpoint in its
# last 90 days, so by the weeks before it leaves it has had none in 60 days (the health score's Red).
UNANSWERED_DAYS = 90
RENEWAL_LEAD_DAYS = 90  # a renewal deal is opened this long before the renewal date
NOTICE_DAYS = 30  # a cancelling company gives notice (its renewal deal is lost) this long before its last day
# Expansion proposals a business day, and the share of them won: (rate, win rate, share that are upsells).
PROPOSALS = {"thriving": (1 / 45, 0.45, 0.3), "expanding": (1 / 60, 0.5, 0.6), "steady": (1 / 120, 0.25, 0.0)}
DUPLICATE_CONTACT_SHARE = 0.06  # companies where a CSM entered a contact twice, then deleted the copy

GOAL_TYPES = {  # goal type: (monthly target range, success criterion, measurement method)
    "リード獲得数": ((200, 2_000), "ウェビナー経由のリード獲得数が目標以上", "MAへの登録件数"),
    "参加者数": ((300, 3_000), "月間のウェビナー参加者数が目標以上", "Nexpro の参加者レポート"),
    "商談化数": ((10, 100), "ウェビナー参加者からの商談化数が目標以上", "CRM の商談件数"),
    "採用応募数": ((30, 300), "採用説明会経由の応募数が目標以上", "採用管理システムの応募件数"),
    "研修修了率": ((80, 95), "オンライン研修の修了率が目標以上", "研修受講ログ"),
}
CONTACT_ROLES = (("代表取締役", "経営企画部"), ("マーケティング部長", "マーケティング部"),
                 ("営業企画課長", "営業企画部"), ("人事部マネージャー", "人事部"), ("広報担当", "広報部"),
                 ("情報システム担当", "情報システム部"),
                 ("マーケティング担当", "マーケティング部"), ("インサイドセールス担当", "営業部"))
TASK_SUBJECTS = {
    "Call": ("定例電話", "利用状況ヒアリング", "活用相談の電話"),
    "Email": ("活用Tipsのご案内", "導入事例の共有", "新機能のご案内"),
    "Meeting": ("訪問打ち合わせ", "活用支援の打ち合わせ"),
    "Other": ("社内共有", "活用レポート作成"),
}
CROSS_SELL_PRODUCTS = ("録画配信オプション", "MA連携オプション", "研修パッケージ")
MEETING_SUBJECTS = ("定例ミーティング", "活用支援ミーティング", "ウェビナー企画相談")
AGENDAS = ("直近のウェビナー実績の振り返り", "次四半期のウェビナー計画", "参加者数向上の施策", "新機能の活用方法")
DECISIONS = ("月2回の定期開催を継続", "アンケート機能を次回から利用", "社内展開の範囲を拡大", "次回までに改善案を検討")
NEXT_ACTIONS = ("活用レポートを送付", "事例資料を共有", "次回定例の日程調整", "管理者向けトレーニングを実施")


def tier(annual_contract_value: int, growth_potential: str) -> str:
    """The account's Tier from the matrix: contract-value band × growth potential."""
    band = next(name for threshold, name in CONTRACT_VALUE_BANDS if annual_contract_value >= threshold)
    return TIER_MATRIX[(band, growth_potential)]


# --- Records as timelines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A reference to another planned record, by its key; becomes that record's Id when written."""

    key: str


@dataclass(frozen=True)
class Change:
    at: datetime
    by: str  # the user's key
    values: dict


@dataclass
class Record:
    key: str
    object: str
    created: datetime
    created_by: str
    values: dict
    changes: list[Change] = field(default_factory=list)

    def change(self, at: datetime, by: str, **values) -> Record:
        self.changes.append(Change(at, by, values))
        return self

    def delete(self, at: datetime, by: str) -> Record:
        """Move the record to the recycle bin (a change like any other, as the API server records it)."""
        return self.change(at, by, IsDeleted=True)

    def state(self, through: date) -> dict:
        """The record as the org shows it at the end of `through` (Tokyo), system and derived fields included."""
        cutoff = day_end(through)
        values = {"IsDeleted": False, **self.values}
        modified, modified_by = self.created, self.created_by
        completed = self.created if values.get("Status") == "Completed" else None
        for change in sorted(self.changes, key=lambda c: c.at):
            if change.at >= cutoff:
                break
            values.update(change.values)
            modified, modified_by = change.at, change.by
            if change.values.get("Status") == "Completed":
                completed = change.at
        values.update(CreatedDate=self.created, CreatedById=Ref(self.created_by), LastModifiedDate=modified,
                      LastModifiedById=Ref(modified_by), SystemModstamp=modified)
        derive(self.object, values, completed)
        return values


def derive(object_name: str, values: dict, completed: datetime | None) -> None:
    """Fields Salesforce computes: names, deal and task status flags."""
    if object_name in ("User", "Contact"):
        values["Name"] = " ".join(part for part in (values.get("LastName"), values.get("FirstName")) if part)
    elif object_name == "Opportunity":
        values["IsClosed"], values["IsWon"], values["Probability"] = OPPORTUNITY_STAGES[values["StageName"]]
    elif object_name == "Task":
        values["IsClosed"] = TASK_STATUSES[values["Status"]]
        values["CompletedDateTime"] = completed if values["IsClosed"] else None


def day_end(day: date) -> datetime:
    """The first moment (UTC) after the Tokyo business date `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) - TOKYO_OFFSET


def at_hour(day: date, hour: int, minute: int = 0) -> datetime:
    """A moment (UTC) at Tokyo `hour` on `day`."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - TOKYO_OFFSET


def tokyo_day(moment: datetime) -> date:
    return (moment + TOKYO_OFFSET).date()


def next_workday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def fold(record: Record, timeline: Iterable[tuple[datetime, str, dict]]) -> Record:
    """Apply a timeline of (moment, user, values): what happened before the record's creation shapes its
    first values, the rest become its changes."""
    for moment, by, values in timeline:
        if moment <= record.created:
            record.values.update(values)
        else:
            record.change(moment, by, **values)
    return record


# --- Who is who -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityPlan:
    """The deliberate identity defects of the org (see `seeded_identity_issues`)."""

    without_account: str  # company key
    duplicated: str  # company key whose tenant id a second account also carries
    without_board_id: str  # company key
    without_tenant_id: tuple[str, ...]  # company keys
    dangling_tenant_id: int
    dangling_board_client_id: int


def identity_plan(params: WorldParams, companies: list[Company]) -> IdentityPlan:
    rng = random.Random(f"sf-identity:{params.seed}")
    order = rng.sample(companies, len(companies))
    persona_sizes = defaultdict(int)
    for company in companies:
        persona_sizes[company.persona] += 1
    # The company without an account never is the only one of its persona, so every persona stays visible.
    without_account = next((c for c in order if persona_sizes[c.persona] > 1), order[0])
    rest = [c for c in order if c is not without_account]
    missing = max(1, round(0.03 * len(companies)))
    return IdentityPlan(
        without_account=without_account.company_key,
        duplicated=rest[0].company_key,
        without_board_id=rest[1].company_key,
        without_tenant_id=tuple(sorted(c.company_key for c in rest[2:2 + missing])),
        dangling_tenant_id=10_001 + params.accounts + 500,
        dangling_board_client_id=500_001 + params.accounts + 500,
    )


def account_keys(params: WorldParams, companies: list[Company], issues: IdentityPlan) -> list[str]:
    """Every account's key in the order their Ids are drawn: the companies', the duplicate, the dangling one."""
    keys = [f"account:{c.company_key}" for c in companies if c.company_key != issues.without_account]
    return [*keys, f"account:{issues.duplicated}:duplicate", "account:dangling"]


def seeded_identity_issues(params: WorldParams) -> dict:
    """The identity defects a freshly seeded org of `params`' world holds, with the Account Ids they have.

    - accounts_without_tenant_id: about 3% of accounts carry no Nexpro_Tenant_Id__c
    - duplicate_tenant: a second Account carries the same tenant id (and board id) as a company's account
    - dangling_tenant: an Account whose tenant id (and board id) belong to no tenant of the world
    - company_without_account: a company (a Nexpro tenant) with no Account at all
    - account_without_board_client_id: one account carries no Board_Client_Id__c
    """
    companies = plan_companies(params)
    by_key = {c.company_key: c for c in companies}
    issues = identity_plan(params, companies)
    ids = {key: make_id("001", number) for number, key in enumerate(account_keys(params, companies, issues))}
    duplicated = by_key[issues.duplicated]
    lost, no_board = by_key[issues.without_account], by_key[issues.without_board_id]
    return {
        "accounts_without_tenant_id": [
            {"account_id": ids[f"account:{key}"], "company_key": key, "tenant_id": by_key[key].nexpro_tenant_id}
            for key in issues.without_tenant_id],
        "duplicate_tenant": {
            "company_key": duplicated.company_key, "tenant_id": duplicated.nexpro_tenant_id,
            "account_id": ids[f"account:{duplicated.company_key}"],
            "duplicate_account_id": ids[f"account:{duplicated.company_key}:duplicate"]},
        "dangling_tenant": {"account_id": ids["account:dangling"], "tenant_id": issues.dangling_tenant_id,
                            "board_client_id": issues.dangling_board_client_id},
        "company_without_account": {"company_key": lost.company_key, "tenant_id": lost.nexpro_tenant_id,
                                    "board_client_id": lost.board_client_id},
        "account_without_board_client_id": {"account_id": ids[f"account:{no_board.company_key}"],
                                            "company_key": no_board.company_key,
                                            "board_client_id": no_board.board_client_id},
    }


def plan_users(params: WorldParams, genesis: datetime) -> tuple[list[Record], list[str]]:
    """The integration user, the CS manager and the CSMs (about one per 25 companies, at least three)."""
    rng = random.Random(f"sf:{params.seed}:users")
    csm_count = max(3, round(params.accounts / 25))
    pool = [(last, first) for last in SURNAMES for first in GIVEN_NAMES]
    names = rng.sample(pool, min(csm_count + 1, len(pool)))
    names += [rng.choice(pool) for _ in range(csm_count + 1 - len(names))]  # a big world: some names repeat
    users = [Record(INTEGRATION, "User", genesis, INTEGRATION, {
        "Username": INTEGRATION_USERNAME, "FirstName": "CSOps", "LastName": "連携ユーザー",
        "Email": INTEGRATION_USERNAME, "Title": "API連携", "Department": "情報システム部", "IsActive": True})]
    last, first = names[0]
    users.append(Record(MANAGER, "User", genesis, INTEGRATION, {
        "Username": "cs-manager@csops.sandbox", "FirstName": first, "LastName": last,
        "Email": "cs-manager@csops.sandbox", "Title": "カスタマーサクセス部 マネージャー",
        "Department": "カスタマーサクセス部", "IsActive": True}))
    csms = []
    for number, (last, first) in enumerate(names[1:], start=1):
        key = f"user:csm:{number}"
        users.append(Record(key, "User", genesis, INTEGRATION, {
            "Username": f"csm{number}@csops.sandbox", "FirstName": first, "LastName": last,
            "Email": f"csm{number}@csops.sandbox", "Title": "カスタマーサクセスマネージャー",
            "Department": "カスタマーサクセス部", "IsActive": True, "ManagerId": Ref(MANAGER)}))
        csms.append(key)
    return users, csms


# --- One company's plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactPlan:
    key: str
    created_on: date
    left_on: date | None  # the day the person left (Is_Active__c false)
    last_name: str
    first_name: str
    email: str
    key_person: bool


@dataclass(frozen=True)
class GoalPlan:
    key: str
    created_on: date
    goal_type: str
    target: float
    starts: date
    ends: date


@dataclass
class Book:
    """What the day-by-day simulation needs to know about one company's account."""

    company: Company
    csm: str
    account: str
    contacts: list[ContactPlan] = field(default_factory=list)
    goals: list[GoalPlan] = field(default_factory=list)
    scheduled: dict[date, list[Record]] = field(default_factory=lambda: defaultdict(list))


@dataclass(frozen=True)
class World:
    params: WorldParams
    companies: list[Company]
    issues: IdentityPlan
    genesis: datetime  # when the org's users were set up, before any account
    duplicate_contacts: frozenset[str]  # company keys


def annual_value(company: Company, day: date) -> int:
    return 12 * PLANS_BY_CODE[plan_on(company, day)].monthly_price_jpy


def tier_on(company: Company, day: date) -> str:
    return tier(annual_value(company, day), GROWTH_POTENTIAL[company.persona])


def notice_day(world: World, company: Company) -> date:
    """When a cancelling company tells its CSM it will not renew: about a month before its last day, and by
    the world's end date (a company cancelling soon after the end has given notice already)."""
    return min(company.cancelled_on - timedelta(days=NOTICE_DAYS), world.params.end_date - timedelta(days=3))


def quiet(company: Company, day: date) -> bool:
    """In a cancelling company's last 90 days of service: nobody answers the CSM (and over the last 60 its
    key persons leave)."""
    return (company.cancelled_on is not None
            and company.cancelled_on - timedelta(days=UNANSWERED_DAYS - 1) <= day <= company.cancelled_on)


def account_timeline(company: Company, book: Book, tenant_id: int | None, board_id: int | None,
                     horizon: date) -> list[tuple[datetime, str, dict]]:
    """Everything that happens to a company's Account: prospect, signed, renewals rolling, plan change,
    cancellation (Former Customer) and reactivation (a Customer again, with a new contract)."""
    events = []
    for number, (start, last_day) in enumerate(contract_spans(company)):
        signed = {"Type": "Customer", "Contract_Start_Date__c": start, "Renewal_Date__c": anniversary(start, 1),
                  "Annual_Contract_Value__c": annual_value(company, start), "Tier__c": tier_on(company, start)}
        if number == 0:
            signed.update(Nexpro_Tenant_Id__c=None if tenant_id is None else str(tenant_id),
                          Board_Client_Id__c=None if board_id is None else str(board_id))
        events.append((at_hour(start, 10), INTEGRATION, signed))
        years = 1
        while (renewal := anniversary(start, years)) <= horizon and (last_day is None or renewal < last_day):
            events.append((at_hour(renewal, 10), INTEGRATION, {"Renewal_Date__c": anniversary(start, years + 1)}))
            years += 1
        if last_day is not None:
            events.append((at_hour(last_day, 18), book.csm, {"Type": "Former Customer"}))
    if company.plan_changed_on is not None:
        events.append((at_hour(company.plan_changed_on, 11), INTEGRATION, {
            "Annual_Contract_Value__c": annual_value(company, company.plan_changed_on),
            "Tier__c": tier_on(company, company.plan_changed_on)}))
    return sorted(events, key=lambda event: event[0])


def account_record(key: str, company: Company, book: Book, created: datetime, created_by: str, name: str,
                   tenant_id: int | None, board_id: int | None, horizon: date, rng: random.Random) -> Record:
    record = Record(key, "Account", created, created_by, {
        "OwnerId": Ref(book.csm), "Name": name, "Industry": company.industry, "Type": "Prospect",
        "NumberOfEmployees": rng.randint(*EMPLOYEES_BY_SIZE[company.size]),
        "Growth_Potential__c": GROWTH_POTENTIAL[company.persona]})
    return fold(record, account_timeline(company, book, tenant_id, board_id, horizon))


def opportunity(key: str, book: Book, created: datetime, kind: str, name: str, amount: int, close: date,
                service_start: date, stage: str = "Proposal", description: str | None = None) -> Record:
    return Record(key, "Opportunity", created, book.csm, {
        "OwnerId": Ref(book.csm), "Name": name, "AccountId": Ref(book.account), "Type": kind, "StageName": stage,
        "Amount": amount, "CloseDate": close, "Service_Start_Date__c": service_start, "Description": description})


def new_deal(book: Book, start: date, reactivation: bool = False) -> Record:
    """A deal that made the company a customer (again), won on the day its contract starts."""
    company = book.company
    key = f"opp:{company.company_key}:{'reactivation' if reactivation else 'new'}"
    deal = opportunity(key, book, at_hour(start - timedelta(days=45), 14), "New",
                       f"{company.company_name} {'再契約' if reactivation else '新規導入'}",
                       annual_value(company, start), start, start)
    deal.change(at_hour(start - timedelta(days=15), 15), book.csm, StageName="Negotiation")
    return deal.change(at_hour(start, 16), book.csm, StageName="Closed Won")


def renewal_key(company: Company, span: int, years: int) -> str:
    return f"opp:{company.company_key}:renewal:" + (f"{span + 1}:" if span else "") + str(years)


def renewal_deal(world: World, book: Book, span: int, start: date, years: int, created_on: date,
                 rng: random.Random) -> Record:
    """The renewal deal for the `years`th anniversary of a contract that started on `start`: won on time, or
    (the renewal on a cancelling company's last day) put off, then lost when the company gives notice."""
    company = book.company
    renewal = anniversary(start, years)
    deal = opportunity(renewal_key(company, span, years), book, at_hour(created_on, 11), "Renewal",
                       f"{company.company_name} 契約更新 {renewal:%Y/%m}", annual_value(company, renewal), renewal,
                       renewal, stage="Qualification")
    if renewal == company.cancelled_on:
        notice = notice_day(world, company)
        close = min(created_on + timedelta(days=30), notice)
        deal.values["CloseDate"] = close
        deal.change(at_hour(created_on + timedelta(days=10), 15), book.csm, StageName="Proposal")
        slipped = created_on + timedelta(days=21)
        while slipped < notice:  # the customer keeps putting the decision off
            close = min(close + timedelta(days=21), notice)
            deal.change(at_hour(slipped, 17), book.csm, CloseDate=close, Description="先方の検討が継続中、決裁時期未定")
            slipped += timedelta(days=21)
        return deal.change(at_hour(notice, 17), book.csm, StageName="Closed Lost", CloseDate=notice,
                           Description="利用低迷により更新見送りの連絡")
    deal.change(at_hour(renewal - timedelta(days=45), 15), book.csm, StageName="Proposal")
    deal.change(at_hour(renewal - timedelta(days=20), 15), book.csm, StageName="Negotiation")
    closed = renewal - timedelta(days=rng.randint(0, 10))
    return deal.change(at_hour(closed, 16), book.csm, StageName="Closed Won", CloseDate=closed)


def upsell_deals(book: Book, rng: random.Random) -> list[Record]:
    """A company's upgrade, won a week before it starts, and the next proposal it is weighing."""
    company, upgraded = book.company, book.company.plan_changed_on
    key = company.company_key
    won_on = upgraded - timedelta(days=SIGNED_BEFORE_START_DAYS)
    uplift = annual_value(company, upgraded) - annual_value(company, upgraded - timedelta(days=1))
    won = opportunity(f"opp:{key}:upgrade", book, at_hour(upgraded - timedelta(days=35), 13), "Upsell",
                      f"{company.company_name} プランアップグレード", uplift, won_on, upgraded)
    won.change(at_hour(won_on - timedelta(days=14), 15), book.csm, StageName="Negotiation")
    won.change(at_hour(won_on, 10), book.csm, StageName="Closed Won")
    proposed_on, close = upgraded + timedelta(days=7), upgraded + timedelta(days=75)
    pending = opportunity(f"opp:{key}:upgrade-next", book, at_hour(proposed_on, 14), "Upsell",
                          f"{company.company_name} 追加オプション", 12 * rng.choice((30_000, 50_000, 80_000)), close,
                          close)
    pending.change(at_hour(upgraded + timedelta(days=50), 15), book.csm, StageName="Negotiation")
    pending.change(at_hour(close, 16), book.csm, StageName="Closed Won" if rng.random() < 0.5 else "Closed Lost")
    return [won, pending]


def plan_contacts(world: World, book: Book, rng: random.Random) -> list[Record]:
    company, signed = book.company, book.company.contract_started_on
    count = rng.randint(*CONTACTS_BY_SIZE[company.size])
    key_persons = min(count, rng.randint(*KEY_PERSONS[company.persona]))
    records = []
    for index in range(count):
        created_on = signed - timedelta(days=50) + timedelta(days=index * 7 + rng.randint(0, 6))
        left_on = None
        if company.cancelled_on is not None and 0 < index < key_persons:  # all key persons but one leave
            # champions leave before the company gives notice (about 30 days before its last day)
            left_on = company.cancelled_on - timedelta(days=rng.randint(QUIET_DAYS // 2, QUIET_DAYS - 5))
        title, department = CONTACT_ROLES[index % len(CONTACT_ROLES)]
        plan = ContactPlan(f"contact:{company.company_key}:{index + 1}", created_on, left_on, rng.choice(SURNAMES),
                           rng.choice(GIVEN_NAMES), f"contact{index + 1}@{company.company_key.lower()}.example.jp",
                           index < key_persons)
        book.contacts.append(plan)
        record = Record(plan.key, "Contact", at_hour(created_on, 10, rng.randint(0, 59)), book.csm, {
            "OwnerId": Ref(book.csm), "AccountId": Ref(book.account), "FirstName": plan.first_name,
            "LastName": plan.last_name, "Email": plan.email, "Phone": f"03-{rng.randint(1000, 9999)}-{index:04d}",
            "Title": title, "Department": department, "Key_Person__c": plan.key_person, "Is_Active__c": True})
        if left_on is not None:
            record.change(at_hour(left_on, 15), book.csm, Is_Active__c=False)
        records.append(record)
    return records


def plan_goals(world: World, book: Book, rng: random.Random) -> list[Record]:
    company = book.company
    counts, weights = GOALS[company.persona]
    records = []
    for index, goal_type in enumerate(rng.sample(list(GOAL_TYPES), rng.choices(counts, weights)[0])):
        if company.contract_started_on < world.params.start_date - timedelta(days=30):
            created_on = world.params.start_date - timedelta(days=rng.randint(10, 80))
        else:
            created_on = company.contract_started_on + timedelta(days=rng.randint(20, 35))
        starts = (created_on.replace(day=1) + timedelta(days=32)).replace(day=1)
        ends = anniversary(starts, 1) - timedelta(days=1)
        (low, high), criterion, method = GOAL_TYPES[goal_type]
        goal = GoalPlan(f"goal:{company.company_key}:{index + 1}", created_on, goal_type,
                        float(rng.randint(low, high)), starts, ends)
        if not in_service(company, created_on):  # a former customer defines no goal
            continue
        book.goals.append(goal)
        record = Record(goal.key, "Outcome_Goal__c", at_hour(created_on, 13, rng.randint(0, 59)), book.csm, {
            "OwnerId": Ref(book.csm), "Name": f"{company.company_name} {goal_type}", "Account__c": Ref(book.account),
            "Goal_Type__c": goal_type, "Target_Value__c": goal.target, "Success_Criterion__c": criterion,
            "Measurement_Method__c": method, "Status__c": "Active", "Start_Date__c": starts, "End_Date__c": ends})
        if company.persona in ("thriving", "expanding"):
            record.change(at_hour(ends + timedelta(days=5), 11), book.csm, Status__c="Achieved")
        records.append(record)
    return records


def plan_book(world: World, company: Company, csm: str) -> tuple[Book, list[Record], list[Record]]:
    """One company's account, and its records that do not come from a day of the history.

    Returns the book, the account record, and the records created before the history starts (those
    created on a day of the history are put in the book's schedule).
    """
    params, issues = world.params, world.issues
    rng = random.Random(f"sf:{params.seed}:{company.company_key}:reference")
    book = Book(company, csm, f"account:{company.company_key}")
    horizon = anniversary(params.end_date, RENEWAL_HORIZON_YEARS)
    tenant_id = None if company.company_key in issues.without_tenant_id else company.nexpro_tenant_id
    board_id = None if company.company_key == issues.without_board_id else company.board_client_id
    account = account_record(book.account, company, book, at_hour(company.contract_started_on - timedelta(days=60),
                                                                   9, rng.randint(0, 59)), INTEGRATION,
                             company.company_name, tenant_id, board_id, horizon, rng)
    planned = [*plan_contacts(world, book, rng), new_deal(book, company.contract_started_on),
               *plan_goals(world, book, rng)]
    if company.company_key in world.duplicate_contacts:
        planned.append(duplicate_contact(world, book, rng))
    for span, (start, last_day) in enumerate(contract_spans(company)):
        years = 1
        while ((renewal := anniversary(start, years)) - timedelta(days=RENEWAL_LEAD_DAYS) < params.start_date
               and (last_day is None or renewal <= last_day)):
            planned.append(renewal_deal(world, book, span, start, years, renewal - timedelta(days=RENEWAL_LEAD_DAYS),
                                        rng))
            years += 1
    if company.reactivated_on is not None:
        planned.append(new_deal(book, company.reactivated_on, reactivation=True))
    if company.plan_change == "upgrade":
        planned.extend(upsell_deals(book, rng))
    before_history = []
    for record in planned:
        created_on = tokyo_day(record.created)
        if created_on < params.start_date:
            before_history.append(record)
        else:
            book.scheduled[created_on].append(record)
    return book, account, before_history


def extra_accounts(world: World, books: dict[str, Book]) -> list[Record]:
    """The duplicate of one company's account, and an account whose keys point at no tenant."""
    params, issues = world.params, world.issues
    rng = random.Random(f"sf:{params.seed}:extra-accounts")
    horizon = anniversary(params.end_date, RENEWAL_HORIZON_YEARS)
    original = books[issues.duplicated]
    company = original.company
    name = (company.company_name.replace("株式会社", "（株）") if "株式会社" in company.company_name
            else f"{company.company_name}（重複）")
    duplicate = account_record(f"account:{company.company_key}:duplicate", company, original,
                               at_hour(params.start_date + timedelta(days=params.days // 2), 11), original.csm,
                               name, company.nexpro_tenant_id, company.board_client_id, horizon, rng)
    signed = tokyo_day(world.genesis) + timedelta(days=90)
    trial = replace(company, company_key="dangling", company_name=company_name(params.accounts * 3 + 1),
                    persona="steady", plan_code="starter", new_plan_code=None, plan_changed_on=None,
                    cancelled_on=None, reactivated_on=None, contract_started_on=signed)
    dangling = account_record("account:dangling", trial, replace(original, company=trial),
                              at_hour(signed - timedelta(days=60), 9), INTEGRATION, trial.company_name,
                              issues.dangling_tenant_id, issues.dangling_board_client_id, horizon, rng)
    return [duplicate, dangling]


# --- A day of the history -------------------------------------------------------------------------------


def touch_rate(world: World, book: Book, day: date) -> float:
    """Completed touchpoints the CSM makes with the company on `day` (a business day), on average."""
    company = book.company
    tenure = (day - company.contract_started_on).days
    if tenure < 0 or day.weekday() >= 5:
        return 0.0
    if not in_service(company, day) or quiet(company, day):
        return 0.0
    base = TOUCH_RATES[company.persona]
    if company.persona == "onboarding_stalled":
        return base if tenure < ONBOARDING_BURST_DAYS else 0.0
    if company.persona == "declining":
        progress = (day - world.params.start_date).days / max(world.params.days - 1, 1)
        base *= max(0.15, 1.0 - 0.9 * progress)
    return base * TIER_TOUCH[tier_on(company, day)]


def contacts_on(book: Book, day: date) -> list[ContactPlan]:
    return [c for c in book.contacts if c.created_on <= day and (c.left_on is None or c.left_on > day)]


def task(book: Book, key: str, created: datetime, kind: str, subject: str, who: ContactPlan | None, due: date,
         status: str, priority: str = "Normal") -> Record:
    return Record(key, "Task", created, book.csm, {
        "OwnerId": Ref(book.csm), "Subject": subject, "WhoId": Ref(who.key) if who else None,
        "WhatId": Ref(book.account), "AccountId": Ref(book.account), "ActivityDate": due, "Status": status,
        "Priority": priority, "Type": kind, "Description": None})


def meeting(book: Book, key: str, day: date, rng: random.Random, kind: str, subject: str, minutes: int,
            attendees: list[ContactPlan], with_note: bool) -> list[Record]:
    """A meeting (an Event) and, usually, its minutes (a Meeting_Note__c)."""
    start = at_hour(day, rng.randint(10, 16), rng.choice((0, 30)))
    end = start + timedelta(minutes=minutes)
    event = Record(key, "Event", start - timedelta(minutes=rng.randint(10, 60)), book.csm, {
        "OwnerId": Ref(book.csm), "Subject": subject, "WhoId": Ref(attendees[0].key) if attendees else None,
        "WhatId": Ref(book.account), "AccountId": Ref(book.account), "StartDateTime": start, "EndDateTime": end,
        "ActivityDate": day, "DurationInMinutes": minutes, "Type": kind, "Description": None})
    if not with_note:
        return [event]
    note = Record(f"{key}:note", "Meeting_Note__c", end + timedelta(minutes=rng.randint(30, 120)), book.csm, {
        "OwnerId": Ref(book.csm), "Name": f"{subject} {day:%Y/%m/%d}", "Account__c": Ref(book.account),
        "Meeting_Date__c": day, "Attendees__c": "、".join(f"{c.last_name}様" for c in attendees) or None,
        "Agenda__c": rng.choice(AGENDAS), "Decisions__c": rng.choice(DECISIONS),
        "Next_Action__c": rng.choice(NEXT_ACTIONS)})
    return [event, note]


def touchpoints(world: World, book: Book, day: date, rng: random.Random, rate: float) -> list[Record]:
    """The day's calls, e-mails and meetings, and the follow-ups they leave (completed when they fall due,
    unless by then the customer has gone quiet)."""
    records, prefix = [], f"{book.company.company_key}:{day.isoformat()}"
    people = contacts_on(book, day)
    priority = "High" if book.company.persona == "churn_bound" else "Normal"
    for index in range(poisson(rng, rate)):
        kind = rng.choices(("Call", "Email", "Meeting", "Other"), (0.3, 0.35, 0.25, 0.1))[0]
        who = rng.choice(people) if people else None
        if kind == "Meeting" and rng.random() < 0.8:
            attendees = rng.sample(people, min(len(people), rng.randint(1, 3)))
            records += meeting(book, f"event:{prefix}:{index}", day, rng, "Meeting", rng.choice(MEETING_SUBJECTS),
                               rng.choice((30, 60)), attendees, rng.random() < 0.8)
        else:
            records.append(task(book, f"task:{prefix}:{index}", tokyo_time(day, rng), kind,
                                rng.choice(TASK_SUBJECTS[kind]), who, day, "Completed", priority))
        if kind in ("Call", "Meeting") and rng.random() < 0.35:
            due = next_workday(day + timedelta(days=rng.randint(5, 20)))
            follow_up = task(book, f"task:{prefix}:{index}:follow-up", tokyo_time(day, rng), "Other",
                             "フォローアップ", who, due, "Not Started", priority)
            done_at = tokyo_time(due, rng)
            if touch_rate(world, book, due) > 0:
                follow_up.change(done_at, book.csm, Status="Completed")
            records.append(follow_up)
    return records


def qbr_day(company: Company, day: date) -> date:
    """The company's QBR day in `day`'s quarter."""
    quarter_start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return next_workday(quarter_start + timedelta(days=7 + int(company.company_key[1:]) * 11 % 45))


def proposal(book: Book, day: date, rng: random.Random) -> Record:
    """An expansion proposal, closing (won or lost) a month or two later."""
    rate, win_rate, upsell_share = PROPOSALS[book.company.persona]
    kind = "Upsell" if rng.random() < upsell_share else "Cross-sell"
    close = next_workday(day + timedelta(days=rng.randint(25, 60)))
    label = "追加ライセンス" if kind == "Upsell" else rng.choice(CROSS_SELL_PRODUCTS)
    deal = opportunity(f"opp:{book.company.company_key}:{day.isoformat()}", book, tokyo_time(day, rng), kind,
                       f"{book.company.company_name} {label}", 12 * rng.choice((20_000, 30_000, 50_000, 100_000)),
                       close, close)
    won = rng.random() < win_rate
    deal.change(tokyo_time(day + (close - day) // 2, rng), book.csm, StageName="Negotiation")
    return deal.change(tokyo_time(close, rng), book.csm, StageName="Closed Won" if won else "Closed Lost")


def outcome_results(book: Book, day: date, rng: random.Random) -> list[Record]:
    """On the 5th, the CSM records last month's actual for every goal running then."""
    period = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
    low, high = ACHIEVEMENT[book.company.persona]
    records = []
    for goal in book.goals:
        if goal.created_on >= day or not goal.starts <= period <= goal.ends:
            continue
        actual = round(goal.target * rng.uniform(low, high), 1)
        records.append(Record(f"result:{goal.key}:{period:%Y-%m}", "Outcome_Result__c", tokyo_time(day, rng),
                              book.csm, {
                                  "OwnerId": Ref(book.csm), "Name": f"{goal.goal_type} {period:%Y-%m}",
                                  "Outcome_Goal__c": Ref(goal.key), "Account__c": Ref(book.account),
                                  "Period__c": period, "Actual_Value__c": actual,
                                  "Achievement_Rate__c": round(actual / goal.target * 100, 1), "Comment__c": None}))
    return records


def duplicate_contact(world: World, book: Book, rng: random.Random) -> Record:
    """A contact entered twice; the CSM deletes the copy a few days later (it sits in the recycle bin)."""
    first = max(world.params.start_date, book.company.contract_started_on + timedelta(days=10))
    day = next_workday(first + timedelta(days=rng.randint(0, max((world.params.end_date - first).days - 10, 0))))
    original = rng.choice([c for c in book.contacts if c.created_on <= day])
    copy = Record(f"contact:{book.company.company_key}:duplicate", "Contact", tokyo_time(day, rng), book.csm, {
        "OwnerId": Ref(book.csm), "AccountId": Ref(book.account), "FirstName": original.first_name,
        "LastName": original.last_name, "Email": original.email, "Key_Person__c": False, "Is_Active__c": True})
    return copy.delete(tokyo_time(day + timedelta(days=rng.randint(1, 6)), rng), book.csm)


def company_day(world: World, book: Book, day: date) -> list[Record]:
    """Everything created for the company on `day`, from the company's random stream for that day."""
    company = book.company
    records = list(book.scheduled.get(day, ()))
    if day < company.contract_started_on:
        return records
    rng = random.Random(f"sf:{world.params.seed}:{company.company_key}:{day.isoformat()}")
    renewal = day + timedelta(days=RENEWAL_LEAD_DAYS)
    for span, (start, last_day) in enumerate(contract_spans(company)):
        years = renewal.year - start.year
        if years >= 1 and anniversary(start, years) == renewal and (last_day is None or renewal <= last_day):
            records.append(renewal_deal(world, book, span, start, years, day, rng))
    if day.day == 5 and in_service(company, day):
        records += outcome_results(book, day, rng)
    rate = touch_rate(world, book, day)
    if rate == 0:
        return records
    if day == next_workday(company.contract_started_on + timedelta(days=1)):
        records += meeting(book, f"event:{company.company_key}:kickoff", day, rng, "Meeting",
                           "オンボーディング キックオフ", 60, contacts_on(book, day)[:3], True)
    if tier_on(company, day) != "Tier 3" and day == qbr_day(company, day):
        quarter = (day.month - 1) // 3 + 1
        records += meeting(book, f"event:{company.company_key}:qbr:{day.year}Q{quarter}", day, rng, "QBR",
                           f"QBR {day.year}Q{quarter}", 90, [c for c in contacts_on(book, day) if c.key_person], True)
    records += touchpoints(world, book, day, rng, rate)
    if (company.persona in PROPOSALS and (day - company.contract_started_on).days >= 60
            and rng.random() < PROPOSALS[company.persona][0]):
        records.append(proposal(book, day, rng))
    return records


# --- Writing --------------------------------------------------------------------------------------------


def id_number(record_id: str) -> int:
    """The sequence number an Id was made from (make_id's inverse)."""
    number = 0
    for character in record_id[6:15]:
        number = number * 62 + BASE62.index(character)
    return number


class OrgWriter:
    """Gives new records their Ids (drawn from each object's sequence, in creation order) and COPYs them;
    collects the field changes of records already in the org."""

    def __init__(self, connection: psycopg.Connection, since: date | None, through: date) -> None:
        self.connection = connection
        self.since, self.through = since, through
        self.ids: dict[str, str] = {}
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        self.seeded: list[tuple[str, str, str]] = []
        self.updates: list[tuple[str, str, dict]] = []
        self.created: dict[str, int] = defaultdict(int)
        if since is not None:
            self.ids.update(connection.execute(
                "select key, id from sf_meta.seeded_record where object = any(%s)",
                (list(REFERENCED_OBJECTS),)).fetchall())

    def add(self, records: list[Record], existing: bool) -> None:
        """Write `records` created in one step (before the history, or on one day); `existing`: they are
        already in the org as of `since`, so only what changed since then is written."""
        if existing:
            for record in records:
                before, after = record.state(self.since), record.state(self.through)
                changed = {name: value for name, value in after.items() if before.get(name) != value}
                if changed:
                    self.updates.append((record.object, record.key, changed))
            return
        by_object = defaultdict(list)
        for record in records:
            by_object[record.object].append(record)
        chunk_ids = {}
        for object_name, members in by_object.items():
            numbers = sorted(number for (number,) in self.connection.execute(
                "select nextval(%s::regclass) from generate_series(1, %s)",
                (id_sequence(OBJECTS_BY_NAME[object_name]), len(members))).fetchall())
            for record, number in zip(members, numbers, strict=True):
                chunk_ids[record.key] = make_id(OBJECTS_BY_NAME[object_name].key_prefix, number)
                if object_name in REFERENCED_OBJECTS:
                    self.ids[record.key] = chunk_ids[record.key]
        for record in records:
            state = record.state(self.through)
            state["Id"] = chunk_ids[record.key]
            obj = OBJECTS_BY_NAME[record.object]
            self.rows[record.object].append(tuple(self.resolve(state.get(f.name)) for f in obj.fields))
            self.seeded.append((record.key, record.object, state["Id"]))
            self.created[record.object] += 1
            if len(self.rows[record.object]) >= FLUSH_ROWS:
                self.flush()

    def resolve(self, value):
        if isinstance(value, Ref):
            if value.key not in self.ids:
                raise RuntimeError(f"seeding refers to {value.key}, which was not created before: a planning bug")
            return self.ids[value.key]
        return value

    def flush(self) -> None:
        cursor = self.connection.cursor()
        for object_name, rows in self.rows.items():
            if not rows:
                continue
            obj = OBJECTS_BY_NAME[object_name]
            columns = ", ".join(f'"{f.name}"' for f in obj.fields)
            with cursor.copy(f"copy {table_name(obj)} ({columns}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            rows.clear()
        if self.seeded:
            with cursor.copy("copy sf_meta.seeded_record (key, object, id) from stdin") as copy:
                for row in self.seeded:
                    copy.write_row(row)
            self.seeded.clear()

    def apply_updates(self) -> int:
        """Write the changes of records that were already in the org; returns how many records changed."""
        ids = dict(self.connection.execute("select key, id from sf_meta.seeded_record where key = any(%s)",
                                           ([key for _, key, _ in self.updates],)).fetchall())
        grouped = defaultdict(list)
        for object_name, key, changed in self.updates:
            if key in ids:  # a record deleted for good through the API stays deleted
                names = tuple(sorted(changed))
                grouped[(object_name, names)].append([*(self.resolve(changed[n]) for n in names), ids[key]])
        with self.connection.cursor() as cursor:
            for (object_name, names), rows in grouped.items():
                assignments = ", ".join(f'"{name}" = %s' for name in names)
                cursor.executemany(f'update {table_name(OBJECTS_BY_NAME[object_name])} set {assignments} '
                                   f'where "Id" = %s', rows)
        return sum(map(len, grouped.values()))


# --- The org --------------------------------------------------------------------------------------------

META_DDL = """
    create schema if not exists sf_meta;
    create table if not exists sf_meta.world (
        accounts integer not null, days integer not null, seed integer not null,
        planned_end_date date not null, seeded_through date not null
    );
    create table if not exists sf_meta.seeded_record (key text primary key, object text not null, id text not null);
"""


def current_world(connection: psycopg.Connection) -> tuple[WorldParams, date] | None:
    """The world the org holds (as planned) and the last day seeded, if any."""
    row = connection.execute(
        "select accounts, days, seed, planned_end_date, seeded_through from sf_meta.world").fetchone()
    if row is None:
        return None
    accounts, days, seed, planned_end_date, seeded_through = row
    return WorldParams(accounts=accounts, days=days, seed=seed, end_date=planned_end_date), seeded_through


def integration_user(connection: psycopg.Connection) -> dict | None:
    """The live integration user's row, if the org has one (the API server creates it when it starts)."""
    return connection.cursor(row_factory=dict_row).execute(
        'select * from sf."User" where "Username" = %s and not "IsDeleted"', (INTEGRATION_USERNAME,)).fetchone()


def reset(connection: psycopg.Connection) -> None:
    """Empty the org and forget the seeded world. Tables, indexes and custom fields stay; so does the
    integration user, with its Id (a running API server keeps acting as it)."""
    kept = integration_user(connection)
    tables = ", ".join(table_name(obj) for obj in OBJECTS_BY_NAME.values())
    connection.execute(f"truncate {tables}, sf_meta.world, sf_meta.seeded_record")
    for obj in OBJECTS_BY_NAME.values():
        connection.execute(f"alter sequence {id_sequence(obj)} restart")
    if kept is not None:
        connection.execute(sql.SQL('insert into sf."User" ({}) values ({})').format(
            sql.SQL(", ").join(map(sql.Identifier, kept)), sql.SQL(", ").join(sql.Placeholder() * len(kept))),
            list(kept.values()))
        connection.execute("select setval(%s::regclass, %s)",
                            (id_sequence(OBJECTS_BY_NAME["User"]), id_number(kept["Id"])))


def plan_world(params: WorldParams) -> World:
    companies = plan_companies(params)
    earliest = min([c.contract_started_on for c in companies] + [params.start_date])
    genesis = at_hour(earliest - timedelta(days=120), 9)
    issues = identity_plan(params, companies)
    with_account = [c.company_key for c in companies if c.company_key != issues.without_account]
    duplicates = random.Random(f"sf-recycle-bin:{params.seed}").sample(
        with_account, min(len(with_account), max(1, round(DUPLICATE_CONTACT_SHARE * len(companies)))))
    return World(params, companies, issues, genesis, frozenset(duplicates))


def write_org(connection: psycopg.Connection, params: WorldParams, since: date | None, through: date,
              progress: Callable[[str], None]) -> tuple[dict[str, int], int]:
    """Create what the org lacks of `params`' world through `through`; `since`: the last day already there."""
    world = plan_world(params)
    writer = OrgWriter(connection, since, through)
    users, csms = plan_users(params, world.genesis)
    existing_integration = integration_user(connection)
    if existing_integration is not None:  # reuse it rather than add a second one
        writer.ids[INTEGRATION] = existing_integration["Id"]
        users = [user for user in users if user.key != INTEGRATION]
    books, accounts, before_history = {}, [], []
    for index, company in enumerate(world.companies):
        if company.company_key == world.issues.without_account:
            continue
        book, account, planned = plan_book(world, company, csms[index % len(csms)])
        books[company.company_key] = book
        accounts.append(account)
        before_history += planned
    accounts += extra_accounts(world, books)
    writer.add([*users, *accounts, *before_history], existing=since is not None)
    del accounts, before_history
    day, first_new = params.start_date, since + timedelta(days=1) if since else params.start_date
    while day <= through:
        writer.add([record for book in books.values() for record in company_day(world, book, day)],
                   existing=since is not None and day <= since)
        if day >= first_new and ((day - first_new).days % 30 == 29 or day == through):
            progress(f"Salesforce sandbox: seeded through {day} ({sum(writer.created.values()):,} records)")
        day += timedelta(days=1)
    writer.flush()
    return dict(writer.created), writer.apply_updates()


def seed_org(database_url: str, params: WorldParams, progress: Callable[[str], None] = log.info, *,
             through: date | None = None) -> dict:
    """Make the Salesforce sandbox org hold `params`' world through `through` (default: its end date).

    The same world already seeded that far: nothing to do. The same world seeded to an earlier day: the
    days since are added (new records, and the changes those days bring to existing ones). Another world:
    the org is emptied and seeded afresh.
    """
    started = time.monotonic()
    through = through or params.end_date
    with psycopg.connect(database_url) as connection:
        connection.execute(META_DDL)
        store.ensure_schema(connection)  # the org's tables, sequences and indexes, as the API server has them
        existing = current_world(connection)
        planned, seeded_through = existing if existing else (None, None)
        same_world = (planned is not None and (planned.accounts, planned.days, planned.seed)
                      == (params.accounts, params.days, params.seed) and planned.end_date <= params.end_date)
        if same_world and seeded_through >= through:
            progress(f"Salesforce sandbox already holds this world ({planned.accounts} companies, "
                     f"{planned.start_date}..{seeded_through}); reusing it")
            return {"action": "reused", "created": {}, "updated": 0, "world": planned, "through": seeded_through}
        if same_world:
            world, since, action = planned, seeded_through, "extended"
        else:
            if planned is not None:
                progress(f"Salesforce sandbox holds another world ({planned.accounts} companies, seed {planned.seed}, "
                         f"{planned.days} days to {planned.end_date}); emptying the org and seeding "
                         f"{params.accounts} companies, seed {params.seed}, {params.days} days to {params.end_date}")
            reset(connection)
            world, since, action = params, None, "seeded"
        created, updated = write_org(connection, world, since, through, progress)
        connection.execute("delete from sf_meta.world")
        connection.execute("insert into sf_meta.world values (%s, %s, %s, %s, %s)",
                           (world.accounts, world.days, world.seed, world.end_date, through))
        connection.execute("analyze sf_meta.seeded_record")
        for obj in OBJECTS_BY_NAME.values():
            connection.execute(f"analyze {table_name(obj)}")
    progress(f"Salesforce sandbox {action} through {through} in {time.monotonic() - started:.1f}s: "
             + ", ".join(f"{name} {count:,}" for name, count in created.items())
             + (f"; {updated:,} records changed" if since else ""))
    return {"action": action, "created": created, "updated": updated, "world": world, "through": through}
