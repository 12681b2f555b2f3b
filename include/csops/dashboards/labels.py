"""The words the dashboards show, in Japanese (the default) or English (CS_DASHBOARDS_LANGUAGE=en)."""

from __future__ import annotations

from csops import settings

# key: (Japanese, English)
WORDS: dict[str, tuple[str, str]] = {
    # navigation
    "app_title": ("カスタマーサクセス ダッシュボード", "Customer Success dashboards"),
    "home": ("ホーム", "Home"),
    "executive": ("エグゼクティブ", "Executive"),
    "manager": ("CSマネージャー", "CS manager"),
    "csm": ("CSM 個人", "CSM"),
    "customer": ("カスタマー360", "Customer 360"),
    "home_intro": ("見たいダッシュボードを選んでください。", "Pick a dashboard."),
    "executive_for": ("CSリーダー: NRR・チャーン・拡大・ヘルス構成・KPIツリー",
                      "CS leader: NRR, churn, expansion, health mix, KPI tree"),
    "manager_for": ("マネージャー: CSM別ポートフォリオとRedリスト", "Manager: each CSM's portfolio and the Red list"),
    "csm_for": ("CSM: 担当顧客のステータス・シグナル・更新・タスク",
                "CSM: your customers' status, signals, renewals and tasks"),
    "customer_for": ("1社のすべて: 契約・MRR・ヘルス・利用・タスク",
                     "One company: contract, MRR, health, usage, tasks"),
    # frame
    "as_of": ("基準日", "As of"),
    "last_run": ("最終成功実行", "Last successful run"),
    "no_run_recorded": ("記録なし", "none recorded"),
    "mart_missing": ("マート `{model}` がウェアハウスにありません。`make run` でパイプラインを実行するか、"
                     "`dbt build --select {model}` でビルドしてください。",
                     "The mart `{model}` is not in the warehouse. Run the pipeline with `make run`, or build it "
                     "with `dbt build --select {model}`."),
    "mart_empty": ("マート `{model}` が空です。`make run` でパイプラインを実行するか、"
                   "`dbt build --select {model}` で再ビルドしてください。",
                   "The mart `{model}` is empty. Run the pipeline with `make run`, or rebuild it with "
                   "`dbt build --select {model}`."),
    "warehouse_unavailable": ("ウェアハウスに接続できません ({error})。`make dashboards` で起動するか、"
                              "CS_WAREHOUSE_URL を設定してください。",
                              "Cannot reach the warehouse ({error}). Start it with `make dashboards`, or set "
                              "CS_WAREHOUSE_URL."),
    # executive
    "last_closed_month": ("直近の締め月", "Last closed month"),
    "nrr_month": ("NRR (月次)", "NRR (month)"),
    "nrr_t12m": ("NRR (直近12か月)", "NRR (trailing 12 months)"),
    "gross_churn_t12m": ("グロスチャーン率 (12か月)", "Gross churn (12 months)"),
    "expansion_t12m": ("拡大率 (12か月)", "Expansion (12 months)"),
    "target": ("目標", "Target"),
    "mrr": ("MRR", "MRR"),
    "cmrr": ("CMRR", "CMRR"),
    "cs_originated": ("CS起点売上 (MRR換算)",
                      "CS-originated revenue (won upsell/cross-sell, as MRR)"),
    "paid_services": ("有償サービス売上", "Paid-services revenue"),
    "retention_trend": ("NRRの推移と目標", "NRR against its target"),
    "churn_expansion_trend": ("グロスチャーンと拡大 (12か月) と目標",
                              "Gross churn and expansion (12 months) against targets"),
    "mrr_trend": ("MRRの推移", "MRR by month"),
    "revenue_trend": ("CS起点売上と有償サービス売上", "CS-originated and paid-services revenue"),
    "health_mix_trend": ("ヘルス構成 (Green / Yellow / Red) の推移と目標",
                         "Health mix (Green / Yellow / Red) against targets"),
    "green_target": ("Green 目標", "Green target"),
    "red_target": ("Red 上限", "Red ceiling"),
    "kpi_tree": ("KPIツリー", "KPI tree"),
    "kpi": ("KPI", "KPI"),
    "branch": ("分類", "Branch"),
    "actual": ("実績", "Actual"),
    "on_target": ("達成", "On target"),
    "yes": ("達成", "on target"),
    "no": ("未達", "off target"),
    "no_target": ("目標なし", "no target"),
    "reason": ("実績なしの理由", "Why no actual"),
    "reason_not_measured": ("この月は計測なし", "not measured this month"),
    "reason_needs_twelve_months": ("12か月分の締め月が必要", "needs twelve closed months"),
    "reason_no_base": ("分母が0", "no base (denominator 0)"),
    "reason_no_data": ("データなし", "no data"),
    "branch_nrr": ("NRR", "NRR"),
    "branch_defence": ("守り (チャーン)", "Defence (churn)"),
    "branch_offence": ("攻め (拡大)", "Offence (expansion)"),
    "branch_data": ("データ", "Data"),
    "month": ("月", "Month"),
    # manager
    "team": ("チーム全体", "Team"),
    "no_csm": ("CSM未割当", "No CSM"),
    "csm_name": ("CSM", "CSM"),
    "companies": ("顧客数", "Customers"),
    "mrr_under_management": ("担当MRR", "MRR"),
    "green": ("Green", "Green"),
    "yellow": ("Yellow", "Yellow"),
    "red": ("Red", "Red"),
    "worsened_7d": ("今週の悪化", "Worse this week"),
    "improved_7d": ("今週の改善", "Better this week"),
    "qbr_rate": ("QBR実施率 (Tier 1/2)", "QBR rate (Tier 1/2)"),
    "proposals_mtd": ("今月の拡大提案", "Expansion proposals this month"),
    "proposals_target": ("提案目標", "Proposal target"),
    "open_tasks": ("未完了タスク", "Open tasks"),
    "overdue_tasks": ("期限切れタスク", "Overdue tasks"),
    "per_csm": ("CSM別", "By CSM"),
    "health_by_csm": ("CSM別のヘルス分布", "Health distribution by CSM"),
    "red_list": ("Redリスト", "Red list"),
    "company": ("企業", "Company"),
    "days_in_red": ("Red日数", "Days in Red"),
    "top_reasons": ("主な理由", "Top reasons"),
    "renewal_date": ("更新日", "Renewal date"),
    "no_red": ("Redの顧客はいません。", "No customer is Red."),
    # csm
    "choose_csm": ("CSMを選択", "Choose a CSM"),
    "status_filter": ("ステータスで絞り込み", "Filter by status"),
    "no_status": ("ステータスなし", "No status"),
    "unknown_csm": ("CSM「{csm}」は見つかりません。", "No CSM \"{csm}\"."),
    "my_customers": ("担当顧客", "Customers"),
    "status": ("ステータス", "Status"),
    "score": ("スコア", "Score"),
    "change_7d": ("7日変化", "7-day change"),
    "change_30d": ("30日変化", "30-day change"),
    "signals": ("シグナル", "Signals"),
    "next_renewals": ("次の更新", "Next renewals"),
    "days_to_renewal": ("更新まで(日)", "Days to renewal"),
    "last_touch": ("最終接点", "Last touch"),
    "last_qbr": ("最終QBR", "Last QBR"),
    "tasks": ("タスク", "Tasks"),
    # customer
    "choose_company": ("企業を選択", "Choose a company"),
    "unknown_company": ("企業「{company}」は見つかりません。", "No company \"{company}\"."),
    "identity": ("ID (Salesforce / Nexpro / board)", "Identity (Salesforce / Nexpro / board)"),
    "data_quality": ("データ品質の問題", "Data-quality issues"),
    "none": ("なし", "none"),
    "tier": ("Tier", "Tier"),
    "touch_model": ("タッチモデル", "Touch model"),
    "plan": ("プラン", "Plan"),
    "contract_start": ("契約開始", "Contract start"),
    "mrr_history": ("MRRの推移と変動", "MRR history and movements"),
    "movement": ("変動", "Movement"),
    "health_history": ("ヘルススコアの推移 (カテゴリ別)", "Health score by category"),
    "total_score": ("総合スコア", "Total score"),
    "usage_score": ("利用", "Usage"),
    "outcome_score": ("成果", "Outcome"),
    "relationship_score": ("関係", "Relationship"),
    "contract_score": ("契約", "Contract"),
    "usage_90d": ("直近90日の利用", "Usage, last 90 days"),
    "webinars_held": ("ウェビナー開催数", "Webinars held"),
    "attendees": ("参加者数", "Attendees"),
    "had_login": ("ログインあり", "Logged in"),
    "key_persons": ("キーパーソン", "Key persons"),
    "nps": ("NPS", "NPS"),
    "outcome_goals": ("成果目標", "Outcome goals"),
    "active_goals": ("有効な目標", "active goals"),
    "achievement": ("達成率", "achievement"),
    "opportunities": ("商談", "Opportunities"),
    "playbooks": ("受けたプレイブック", "Playbook firings"),
    "no_playbooks": ("プレイブックの記録はありません。", "No playbook firing recorded."),
    "no_usage": ("テナントの利用データがありません。", "No product usage for this company."),
    "date": ("日付", "Date"),
    "playbook": ("プレイブック", "Playbook"),
    "action": ("アクション", "Action"),
    "outcome": ("結果", "Outcome"),
    "detail": ("詳細", "Detail"),
}


# The KPI tree's names in Japanese; in English the kpi_targets seed's own kpi_name is shown.
KPI_NAMES_JA = {
    "nrr_t12m": "NRR (直近12か月)",
    "gross_churn_rate_t12m": "グロスチャーン率 (直近12か月)",
    "expansion_rate_t12m": "拡大率 (直近12か月)",
    "green_ratio": "Green 比率",
    "red_ratio": "Red 比率",
    "onboarding_completion_rate": "オンボーディング完了率",
    "time_to_first_value_days": "初回価値到達までの日数 (TTFV)",
    "outcome_definition_rate": "成果目標の設定率",
    "outcome_achieving_rate": "成果達成顧客の割合",
    "qbr_rate_tier_1_2": "QBR実施率 (Tier 1/2)",
    "expansion_proposals_per_csm": "CSMあたり拡大提案数",
    "proposal_close_rate": "提案の受注率",
    "salesforce_data_completeness": "Salesforce データ充足率",
    "usage_auto_sync_rate": "利用データ自動連携率",
    "paid_services_revenue_t12m": "有償サービス売上 (直近12か月)",
}


def kpi_name(kpi_key: str, seed_name: str) -> str:
    """The KPI's name in the chosen language (the seed's name in English, or for a KPI not listed here)."""
    return seed_name if settings.dashboards_language() == "en" else KPI_NAMES_JA.get(kpi_key, seed_name)


def localized(row, column: str):
    """A mart value that has a Japanese twin (`<column>_ja`): the twin when the dashboards speak Japanese."""
    if settings.dashboards_language() == "ja" and f"{column}_ja" in row:
        return row[f"{column}_ja"]
    return row[column]


def t(key: str, **values) -> str:
    """The words for `key` in the chosen language, with `{name}` placeholders filled from `values`."""
    japanese, english = WORDS[key]
    text = english if settings.dashboards_language() == "en" else japanese
    return text.format(**values) if values else text
