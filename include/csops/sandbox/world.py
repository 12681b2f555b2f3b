"""The sandbox world: which companies exist, how each behaves, and the manifest the other sandboxes read.

A world is a pure function of (accounts, days, seed, end date). The Nexpro, board and Salesforce
sandboxes all read the same companies, so the three systems describe the same customers and agree on
the dates of their lifecycle, which spans the twelve months before the end date:

- New contracts: `contract_started_on`. Some companies sign during the last twelve months (all the
  onboarding-stalled ones, and a few others during the product history).
- Cancellations: every churn-bound company has `cancelled_on`, its last day of service, which is a renewal
  anniversary of its contract start (the contract is not renewed). Most cancel within the last eleven
  months; about a quarter cancel 1-60 days after the end date (notice already given, usage collapsing,
  still billed at the end). Usage collapses over the 60 days before `cancelled_on`, and stops after it.
- Reactivations: some cancelled companies sign again 2-6 months later (`reactivated_on`, at least 15 days
  before the end date): usage (steadier now) and billing start again.
- Plan changes, up or down (`new_plan_code` from `plan_changed_on`): expanding companies upgrade one plan
  mid-way, some declining companies downgrade one plan. `plan_on` is the one rule every system bills,
  limits and values a company by.

Small worlds still show every event: when chance did not produce one in the last twelve months (a new
contract, a cancellation before the end and one after it, a reactivation, an upgrade, a downgrade, an
upgrade signed before the end that starts after it), `plan_companies` gives that role to a specific
company, always the same one for the same params.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path

PERSONAS = {
    # persona: (share of companies, what the health score should later say about it)
    "thriving": (0.20, "heavy, broad and growing use; advanced features; happy users"),
    "steady": (0.28, "regular use of the basics, flat"),
    "declining": (0.15, "usage sliding month after month"),
    "churn_bound": (0.10, "usage collapsing in the two months before it cancels; unhappy users"),
    "expanding": (0.12, "pressing against plan limits, upgrades its plan mid-way"),
    "onboarding_stalled": (0.15, "signed recently, tried a few things, then stopped"),
}


@dataclass(frozen=True)
class Plan:
    plan_id: int
    plan_code: str
    plan_name: str
    webinars_per_month_limit: int
    attendees_per_webinar_limit: int
    storage_gb_limit: int
    monthly_price_jpy: int


PLANS = (
    Plan(1, "starter", "スターター", 4, 100, 10, 30_000),
    Plan(2, "standard", "スタンダード", 10, 300, 50, 80_000),
    Plan(3, "business", "ビジネス", 30, 1_000, 200, 200_000),
    Plan(4, "enterprise", "エンタープライズ", 100, 3_000, 1_000, 500_000),
)
PLANS_BY_CODE = {plan.plan_code: plan for plan in PLANS}

CANCELLING_AFTER_END = 0.25  # share of churn-bound companies still billed at the end, notice given
REACTIVATING = 0.35  # share of the other churn-bound companies that come back
DOWNGRADING = 0.5  # share of declining companies (above the starter plan) that move one plan down
SIGNED_BEFORE_START_DAYS = 7  # an upgrade is signed (won in Salesforce) this long before it starts

INDUSTRIES = ("製造", "IT・通信", "金融", "医療・製薬", "教育", "人材", "不動産", "小売", "コンサルティング", "官公庁")
NAME_STEMS = (
    "青葉", "さくら", "東和", "大和", "みらい", "北斗", "光陽", "富士見", "瑞穂", "明星", "朝日", "若葉",
    "白鷺", "紅葉", "銀河", "昭栄", "日進", "双葉", "翔栄", "千代田", "浪速", "湘南", "信濃", "陸奥",
    "飛鳥", "葵", "橘", "楓", "椿", "菖蒲", "萌黄", "琥珀", "翡翠", "瑠璃", "桔梗", "藤",
)
NAME_TRADES = (
    "商事", "テクノロジーズ", "製薬", "物産", "ホールディングス", "システムズ", "工業", "コンサルティング",
    "メディカル", "不動産", "ソリューションズ", "エンジニアリング", "ラボ", "ネットワークス", "精機",
    "化学", "食品", "教育センター", "リサーチ", "パートナーズ",
)
NAME_FORMS = ("株式会社{}{}", "{}{}株式会社", "{}{}合同会社", "{}{}グループ株式会社")


@dataclass(frozen=True)
class WorldParams:
    accounts: int
    days: int
    seed: int
    end_date: date
    # Multiplies the attendees registered for each webinar (registrations and viewing_sessions, the two
    # largest tables). 1.0 is the product as it is; a benchmark may thin its world with a smaller value
    # to keep every company and day while generating a fraction of the rows.
    attendee_scale: float = 1.0

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


@dataclass(frozen=True)
class Company:
    company_key: str
    nexpro_tenant_id: int
    board_client_id: int
    company_name: str
    industry: str
    persona: str
    size: str
    contract_started_on: date
    plan_code: str  # the plan signed at the contract start
    new_plan_code: str | None = None  # a plan change, up or down, in force from `plan_changed_on`
    plan_changed_on: date | None = None
    cancelled_on: date | None = None  # the last day of service (a renewal anniversary not renewed)
    reactivated_on: date | None = None  # service and billing start again
    user_count: int = 0
    attendee_base: int = 0

    @property
    def plan_change(self) -> str | None:
        """'upgrade', 'downgrade', or None."""
        if self.new_plan_code is None:
            return None
        higher = PLANS_BY_CODE[self.new_plan_code].monthly_price_jpy > PLANS_BY_CODE[self.plan_code].monthly_price_jpy
        return "upgrade" if higher else "downgrade"


def plan_on(company: Company, day: date) -> str:
    """The plan the company is on on `day`: the one every system bills, limits and values it by."""
    if company.plan_changed_on is not None and day >= company.plan_changed_on:
        return company.new_plan_code
    return company.plan_code


def contract_spans(company: Company) -> list[tuple[date, date | None]]:
    """The periods the company is a customer: from its contract start to `cancelled_on` (its last day of
    service, or open), and again from `reactivated_on`."""
    spans = [(company.contract_started_on, company.cancelled_on)]
    if company.reactivated_on is not None:
        spans.append((company.reactivated_on, None))
    return spans


def in_service(company: Company, day: date) -> bool:
    return any(start <= day and (end is None or day <= end) for start, end in contract_spans(company))


def anniversary(start: date, years: int) -> date:
    """`start` moved by `years` (negative: back); 29 February becomes the 28th in other years."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


def company_name(index: int) -> str:
    stem = NAME_STEMS[index % len(NAME_STEMS)]
    trade = NAME_TRADES[(index // len(NAME_STEMS)) % len(NAME_TRADES)]
    form = NAME_FORMS[(index // (len(NAME_STEMS) * len(NAME_TRADES))) % len(NAME_FORMS)]
    name = form.format(stem, trade)
    rounds = index // (len(NAME_STEMS) * len(NAME_TRADES) * len(NAME_FORMS))
    return name if rounds == 0 else f"{name}（{rounds + 1}）"


def plan_companies(params: WorldParams) -> list[Company]:
    """Decide every company of the world, with its lifecycle. Pure: the same params give the same companies."""
    rng = random.Random(f"world:{params.seed}")
    personas = list(PERSONAS)
    shares = [PERSONAS[p][0] for p in personas]
    name_order = list(range(params.accounts * 3))
    rng.shuffle(name_order)
    companies = []
    for index in range(params.accounts):
        persona = rng.choices(personas, shares)[0]
        size = rng.choices(("small", "mid", "large"), (0.5, 0.35, 0.15))[0]
        if persona == "onboarding_stalled":
            started = params.end_date - timedelta(days=rng.randint(20, 55))
        elif rng.random() < 0.12:
            started = params.start_date + timedelta(days=rng.randint(0, max(params.days - 60, 0)))
        else:
            started = params.start_date - timedelta(days=rng.randint(30, 900))
        plan_code = {"small": "starter", "mid": "standard", "large": "business"}[size]
        if persona == "thriving" and size == "large" and rng.random() < 0.5:
            plan_code = "enterprise"
        new_plan = None
        if persona == "expanding":
            plan_code = "standard" if size != "large" else "business"
            new_plan = plan_above(plan_code)
        users = {"small": rng.randint(4, 10), "mid": rng.randint(10, 35), "large": rng.randint(35, 90)}[size]
        limit = PLANS_BY_CODE[plan_code].attendees_per_webinar_limit
        attendee_base = int(limit * (rng.uniform(0.85, 0.98) if persona == "expanding" else rng.uniform(0.08, 0.25)))
        companies.append(lifecycle(Company(
            company_key=f"C{index + 1:05d}",
            nexpro_tenant_id=10_001 + index,
            board_client_id=500_001 + index,
            company_name=company_name(name_order[index]),
            industry=rng.choice(INDUSTRIES),
            persona=persona,
            size=size,
            contract_started_on=started,
            plan_code=plan_code,
            new_plan_code=new_plan,
            user_count=users,
            attendee_base=attendee_base,
        ), params))
    return assign_missing_roles(companies, params)


def plan_above(plan_code: str) -> str:
    return PLANS[min(PLANS_BY_CODE[plan_code].plan_id, len(PLANS) - 1)].plan_code


def plan_below(plan_code: str) -> str:
    return PLANS[max(PLANS_BY_CODE[plan_code].plan_id - 2, 0)].plan_code


def lifecycle(company: Company, params: WorldParams) -> Company:
    """Expanding companies upgrade, churn-bound companies cancel (some come back later), some declining
    companies downgrade."""
    rng = random.Random(f"world:{params.seed}:{company.company_key}:lifecycle")
    if company.persona == "expanding":  # upgrades mid-way through the product history (or soon after)
        share = rng.uniform(0.3, 0.9)
        changed = max(company.contract_started_on, params.start_date) + timedelta(days=int(params.days * share))
        return replace(company, plan_changed_on=changed)
    if company.persona == "churn_bound":
        if rng.random() < CANCELLING_AFTER_END:
            return churn(company, params, "cancelling")
        return churn(company, params, "reactivated" if rng.random() < REACTIVATING else "cancelled")
    if company.persona == "declining" and company.plan_code != "starter" and rng.random() < DOWNGRADING:
        changed = params.end_date - timedelta(days=rng.randint(15, 300))
        if changed >= company.contract_started_on + timedelta(days=90):
            return replace(company, new_plan_code=plan_below(company.plan_code), plan_changed_on=changed)
    return company


def churn(company: Company, params: WorldParams, role: str) -> Company:
    """The company's contract ends at a renewal anniversary: the start is chosen so that it does.

    role: 'cancelled' (within the last eleven months), 'reactivated' (cancelled, then back 2-6 months
    later, at least 15 days before the end) or 'cancelling' (1-60 days after the end date).
    """
    rng = random.Random(f"world:{params.seed}:{company.company_key}:churn:{role}")
    end = params.end_date
    match role:
        case "cancelling":
            target = end + timedelta(days=rng.randint(1, 60))
        case "cancelled":
            target = end - timedelta(days=rng.randint(1, 334))
        case "reactivated":
            target = end - timedelta(days=rng.randint(15 + 61, 334))
        case _:
            raise ValueError(f"unknown churn role {role!r}")
    years = rng.randint(1, 3)
    started = anniversary(target, -years)
    cancelled = anniversary(started, years)
    reactivated = None
    if role == "reactivated":
        latest = (end - timedelta(days=15) - cancelled).days
        reactivated = cancelled + timedelta(days=rng.randint(61, min(182, latest)))
    return replace(company, contract_started_on=started, cancelled_on=cancelled, reactivated_on=reactivated,
                   new_plan_code=None, plan_changed_on=None)


def churn_role(company: Company, params: WorldParams) -> str | None:
    if company.cancelled_on is None:
        return None
    if company.cancelled_on > params.end_date:
        return "cancelling"
    return "cancelled" if company.reactivated_on is None else "reactivated"


def assign_missing_roles(companies: list[Company], params: WorldParams) -> list[Company]:
    """Give each lifecycle event chance left out of the last twelve months to a specific company.

    Churn roles go to a churn-bound company whose role another one also plays, else to a company of the
    most common other persona (which becomes churn-bound, as long as its persona keeps a member).
    """
    companies = list(companies)
    end, year_ago = params.end_date, params.end_date - timedelta(days=365)
    for role in ("cancelled", "cancelling", "reactivated"):
        roles = [churn_role(c, params) for c in companies]
        if role in roles:
            continue
        shared = [i for i, r in enumerate(roles) if r is not None and roles.count(r) > 1]
        if not shared:
            counts = {p: sum(c.persona == p for c in companies) for p in PERSONAS}
            spare = [i for i, c in enumerate(companies) if c.persona not in ("churn_bound", "expanding")
                     and counts[c.persona] > 1]
            shared = sorted(spare, key=lambda i: -counts[companies[i].persona])
        if shared:
            index = shared[0]
            companies[index] = churn(replace(companies[index], persona="churn_bound"), params, role)

    def first(personas: tuple[str, ...], condition) -> int | None:
        matching = [i for i, c in enumerate(companies) if c.persona in personas and condition(c)]
        return min(matching, key=lambda i: personas.index(companies[i].persona)) if matching else None

    def settled(c: Company) -> bool:  # a long-standing customer, with no lifecycle event of its own
        return (c.cancelled_on is None and c.new_plan_code is None
                and c.contract_started_on <= end - timedelta(days=90))

    if not any(year_ago < c.contract_started_on <= end for c in companies):
        index = first(("steady", "thriving", "declining"), settled)
        if index is not None:
            started = end - timedelta(days=max(30, min(params.days // 2, 300)))
            companies[index] = replace(companies[index], contract_started_on=started)

    def upgrades(low: date, high: date) -> list[int]:
        return [i for i, c in enumerate(companies)
                if c.plan_change == "upgrade" and low < c.plan_changed_on <= high]

    if not upgrades(year_ago, end):
        index = first(("expanding", "thriving", "steady"), lambda c: (
            c.cancelled_on is None and c.plan_code != "enterprise" and c.contract_started_on <= end - timedelta(days=60)
            and (c.plan_change == "upgrade" or c.new_plan_code is None)))
        if index is not None:
            company = companies[index]
            companies[index] = replace(company, new_plan_code=plan_above(company.plan_code),
                                       plan_changed_on=end - timedelta(days=30))
    # An upgrade signed before the end that starts after it ("won, not yet started").
    if not upgrades(end, end + timedelta(days=SIGNED_BEFORE_START_DAYS)):
        in_window = upgrades(year_ago, end)
        index = first(("expanding", "thriving", "steady"), lambda c: (
            c.cancelled_on is None and c.plan_code != "enterprise"
            and (c.plan_change == "upgrade" or c.new_plan_code is None)
            and not (len(in_window) == 1 and companies[in_window[0]] is c)))
        if index is not None:
            company = companies[index]
            companies[index] = replace(company, new_plan_code=plan_above(company.plan_code),
                                       plan_changed_on=end + timedelta(days=5))
    if not any(c.plan_change == "downgrade" and year_ago < c.plan_changed_on <= end for c in companies):
        index = first(("declining", "steady"), settled)
        if index is not None:
            company = companies[index]
            plan = company.plan_code if company.plan_code != "starter" else "standard"
            companies[index] = replace(company, plan_code=plan, new_plan_code=plan_below(plan),
                                       plan_changed_on=end - timedelta(days=45))
    return companies


def write_manifest(path: Path, params: WorldParams, companies: list[Company]) -> Path:
    """Write the world manifest (JSON) that the Salesforce and board sandboxes read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "params": {**asdict(params), "start_date": params.start_date},
        "plans": [asdict(plan) for plan in PLANS],
        "companies": [asdict(company) for company in companies],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1, default=str))
    tmp.replace(path)
    return path

