"""The sandbox world: which companies exist, how each behaves, and the manifest the other sandboxes read.

A world is a pure function of (accounts, days, seed, end date). The Nexpro, board and Salesforce
sandboxes all read the same manifest, so the three systems describe the same companies.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

PERSONAS = {
    # persona: (share of companies, what the health score should later say about it)
    "thriving": (0.20, "heavy, broad and growing use; advanced features; happy users"),
    "steady": (0.28, "regular use of the basics, flat"),
    "declining": (0.15, "usage sliding month after month"),
    "churn_bound": (0.10, "usage collapsing in the last two months; unhappy users"),
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
    plan_code: str
    upgraded_plan_code: str | None = None
    upgraded_on: date | None = None
    user_count: int = 0
    attendee_base: int = 0


def company_name(index: int) -> str:
    stem = NAME_STEMS[index % len(NAME_STEMS)]
    trade = NAME_TRADES[(index // len(NAME_STEMS)) % len(NAME_TRADES)]
    form = NAME_FORMS[(index // (len(NAME_STEMS) * len(NAME_TRADES))) % len(NAME_FORMS)]
    name = form.format(stem, trade)
    rounds = index // (len(NAME_STEMS) * len(NAME_TRADES) * len(NAME_FORMS))
    return name if rounds == 0 else f"{name}（{rounds + 1}）"


def plan_companies(params: WorldParams) -> list[Company]:
    """Decide every company of the world. Pure: the same params give the same companies."""
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
        upgraded_plan, upgraded_on = None, None
        if persona == "expanding":
            plan_code = "standard" if size != "large" else "business"
            upgraded_plan = "business" if plan_code == "standard" else "enterprise"
            upgraded_on = max(started, params.start_date) + timedelta(days=int(params.days * 0.6))
        users = {"small": rng.randint(4, 10), "mid": rng.randint(10, 35), "large": rng.randint(35, 90)}[size]
        limit = PLANS_BY_CODE[plan_code].attendees_per_webinar_limit
        attendee_base = int(limit * (rng.uniform(0.85, 0.98) if persona == "expanding" else rng.uniform(0.08, 0.25)))
        companies.append(Company(
            company_key=f"C{index + 1:05d}",
            nexpro_tenant_id=10_001 + index,
            board_client_id=500_001 + index,
            company_name=company_name(name_order[index]),
            industry=rng.choice(INDUSTRIES),
            persona=persona,
            size=size,
            contract_started_on=started,
            plan_code=plan_code,
            upgraded_plan_code=upgraded_plan,
            upgraded_on=upgraded_on,
            user_count=users,
            attendee_base=attendee_base,
        ))
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

