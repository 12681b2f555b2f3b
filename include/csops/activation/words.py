"""The words of the activation's messages to people: the Slack status changes, the daily digest and the
killswitch alert, in Japanese (the default) or English (CS_ACTIVATION_LANGUAGE=en).

A message speaks one language: its frame comes from here, its data in the same language (the health reasons
from fct_health_scores.top_reasons or top_reasons_ja, signal names from signal_name or signal_name_ja), and
no raw key (an outcome such as `skipped_no_recipient`, a signal key) reaches a reader. English counts take
their singular or plural form; Japanese counts take their counter word.

`say(key, language, **values)` fills a phrase's `{placeholders}`; a phrase with a count is
`(japanese, english_one, english_other)` and is given `n=`.
"""

from __future__ import annotations

from csops import settings

# key: (Japanese, English) or, for a count `n`, (Japanese, English singular, English plural)
PHRASES: dict[str, tuple[str, ...]] = {
    # counts
    "companies": ("{n:,}社", "{n:,} company", "{n:,} companies"),
    "firings": ("{n:,}件", "{n:,} firing", "{n:,} firings"),
    "signals": ("{n:,}件", "{n:,} signal", "{n:,} signals"),
    # the ledger's outcomes, as a person reads them
    "outcome.sent": ("送信", "sent"),
    "outcome.created": ("作成", "created"),
    "outcome.updated": ("更新", "updated"),
    "outcome.claimed": ("処理中", "in progress"),
    "outcome.unknown": ("結果不明", "outcome unknown"),
    "outcome.dry_run": ("ドライラン", "dry run"),
    "outcome.skipped_cooldown": ("クールダウン中で見送り", "skipped (cooldown)"),
    "outcome.skipped_no_recipient": ("宛先なしで見送り", "skipped (no recipient)"),
    "outcome.skipped_backfill": ("過去日付のため見送り", "skipped (a past date)"),
    "outcome.failed": ("失敗", "failed"),
    "outcome.stopped": ("キルスイッチで保留", "held by the killswitch"),
    # signal kinds
    "kind.risk": ("リスク", "risk"),
    "kind.expansion": ("拡大", "expansion"),
    # the digest
    "digest.title": ("CS デイリーダイジェスト {run_date}", "CS daily digest {run_date}"),
    "digest.health": ("*ヘルス* ({companies}): {mix}", "*Health* ({companies}): {mix}"),
    "digest.no_scores": ("*ヘルス*: {run_date} のスコアがありません", "*Health*: no scores for {run_date}"),
    "digest.changes": ("*ステータス変化*: {changes}", "*Status changes*: {changes}"),
    "digest.rubric": ("*ルーブリック*: {change}", "*Rubric*: {change}"),
    "digest.signals": ("*アクティブなシグナル*: {total} — {kinds}", "*Active signals*: {total} — {kinds}"),
    "digest.no_signals": ("*アクティブなシグナル*: なし", "*Active signals*: none"),
    "digest.revenue": ("*NRR* {month}: {nrr}（直近12か月 {nrr_t12m}）, MRR ¥{mrr}",
                       "*NRR* {month}: {nrr} (trailing 12 months {nrr_t12m}), MRR ¥{mrr}"),
    "digest.no_revenue": ("*NRR*: 売上データがありません", "*NRR*: no revenue data"),
    "digest.playbooks": ("*プレイブック*: {outcomes}", "*Playbooks*: {outcomes}"),
    "digest.unknown": ("*送信結果が不明*: {firings} — 届いたか確認のうえ、必要なら "
                       "`csops activation resend --firing <key>` で再送（一覧は `csops activation unknown`）",
                       "*Outcome unknown*: {firings} — check whether they arrived, and resend one on purpose with "
                       "`csops activation resend --firing <key>` (list: `csops activation unknown`)"),
    "digest.dashboards": ("*ダッシュボード*: <{executive}|エグゼクティブ> · <{manager}|CSマネージャー>",
                          "*Dashboards*: <{executive}|Executive> · <{manager}|CS manager>"),
    "none": ("なし", "none"),
    # the status-change post
    "status.title": ("ヘルススコアのステータス変化{day}: {companies}", "Health status changes{day}: {companies}"),
    "status.none": ("ステータスが変わった顧客はありません。", "No customer changed status."),
    "status.none_short": ("（変化なし）", " (no change)"),
    "status.counts": ("悪化 {worse} / 改善 {better}", "worse {worse} / better {better}"),
    "status.reasons": ("理由", "Reasons"),
    "status.no_reasons": ("記録なし", "none recorded"),
    "status.csm": ("担当CSM", "CSM"),
    "status.no_csm": ("未割当", "unassigned"),
    "status.unnamed": ("(名称未登録)", "(no name)"),
    "status.more": ("ほか {companies}（一覧は marts.fct_health_scores の status_transition）",
                    "and {companies} more (all of them: marts.fct_health_scores, status_transition)"),
    "status.more_short": (" ほか", " and more"),
    # the killswitch
    "alert.slack": ("{run_date} 分のアクティベーションを停止しました: Salesforce への書き戻しも、プレイブックの実行も"
                    "していません（保留 {firings}、対象 {companies}）。理由: {reasons}",
                    "Activation stopped for {run_date}: nothing was written back to Salesforce and no playbook "
                    "fired ({firings} held, {companies}). Why: {reasons}"),
    "reason.no_extract_runs": ("取り込みの記録がありません（ops.extract_runs がありません）: "
                               "先に cs_daily を実行してください",
                               "no load is recorded (ops.extract_runs does not exist): run cs_daily first"),
    "reason.stale_source": ("古いソース: {table} の最後の取り込みは {run_date} が終わる前（東京時間 {last_loaded}）",
                            "stale source: {table} last loaded {last_loaded} Tokyo time, before {run_date} ended"),
    "reason.never_loaded": ("古いソース: {table} は一度も取り込みに成功していません",
                            "stale source: {table} never loaded successfully"),
    "reason.no_dbt_build": ("{run_date} の dbt ビルドの記録がありません（ops.dbt_node_results）: "
                            "先に cs_daily を実行してください",
                            "no dbt build is recorded for {run_date} (ops.dbt_node_results): run cs_daily first"),
    "reason.dbt_failed": ("cs_daily の実行 {run_id} で dbt のモデル・テストが {n} 件失敗: {nodes}",
                          "{n} dbt model or test failed in cs_daily run {run_id}: {nodes}",
                          "{n} dbt models and tests failed in cs_daily run {run_id}: {nodes}"),
    "reason.no_scores": ("{run_date} にスコアのある顧客がいません（marts.fct_health_scores）",
                         "no company is scored on {run_date} (marts.fct_health_scores)"),
    "reason.mass_firing": ("一斉発火: {run_date} に {scored}社中 {firing}社（{share}）にプレイブックが発火し、"
                           "上限 {limit} を超えます（CS_ACTIVATION_MAX_FIRING_SHARE）",
                           "mass firing: {firing} of {scored} companies ({share}) would get a playbook on {run_date}, "
                           "above the limit of {limit} (CS_ACTIVATION_MAX_FIRING_SHARE)"),
    "reason.backfill_run": ("過去日付は発火しません: cs_daily のバックフィルで起動されたため、書き戻しも送信もしません",
                            "the past does not fire: started by a backfill of cs_daily; nothing is written back or "
                            "sent for it"),
    "reason.past_date": ("過去日付は発火しません: {run_date} はアクティベーション済みの最新日 {latest} より前のため、"
                         "書き戻しも送信もしません",
                         "the past does not fire: {run_date} is older than {latest}, the latest date already "
                         "activated; nothing is written back or sent for it"),
}


def say(key: str, language: str | None = None, **values) -> str:
    """The phrase `key` in `language` (default: CS_ACTIVATION_LANGUAGE) with its placeholders filled; a
    phrase with a count takes it as `n`."""
    language = language or settings.activation_language()
    forms = PHRASES[key]
    if language == "ja":
        text = forms[0]
    elif len(forms) == 3:
        text = forms[1] if values.get("n") == 1 else forms[2]
    else:
        text = forms[1]
    return text.format(**values)


def term(group: str, key: str, language: str | None = None) -> str:
    """A key of `group` in words (`term("outcome", "skipped_cooldown")`); a key this catalog does not know is
    shown as it is."""
    return say(f"{group}.{key}", language) if f"{group}.{key}" in PHRASES else key


def separator(language: str | None = None) -> str:
    """Between the items of a list: 、 in Japanese, a comma in English."""
    return "、" if (language or settings.activation_language()) == "ja" else ", "
