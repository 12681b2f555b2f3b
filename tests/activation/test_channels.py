"""The activation channels end to end: templates rendered, e-mail through Airflow's SMTP provider to the mail
catcher, Slack posts through the Slack webhook provider to the sink, and the Slack messages built from the marts."""

from __future__ import annotations

import json
import logging
import re
from datetime import date

import psycopg
import pytest

from csops import settings
from csops.activation import channels
from csops.activation.channels import ChannelError, RenderedEmail, TemplateContextError, render_email
from tests.conftest import free_port

# A company as the marts may give it: nothing but its name (no contact, no CSM, no reasons, Nones).
BARE_COMPANY = {"company_name": "株式会社サンプル商事", "contact_name": None, "csm_name": None, "csm_email": "",
                "top_reasons": None}
KILLSWITCH = {"reasons": ["stale source: salesforce.account", "mass firing: 180 of 400 companies"],
              "held_firings": 250, "companies": 180}
CONTEXTS = {key: {**BARE_COMPANY, **(KILLSWITCH if key == "killswitch_alert" else {})}
            for key in channels.REQUIRED_KEYS}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(channels, "RETRY_WAIT_SECONDS", 0.05)


# --- templates ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("language", settings.LANGUAGES)
@pytest.mark.parametrize("key", sorted(channels.REQUIRED_KEYS))
def test_every_template_renders_for_a_company_with_missing_fields(key, language):
    email = render_email(key, CONTEXTS[key], language)
    assert email.subject and "\n" not in email.subject
    for part in (email.subject, email.body_text, email.body_html):
        assert "None" not in part and "Undefined" not in part and "{{" not in part
    assert "\n\n\n" not in email.body_text
    if key == "killswitch_alert":
        assert all(reason in email.body_text for reason in KILLSWITCH["reasons"])
        assert "250" in email.body_text and "180" in email.body_text
    else:
        assert "株式会社サンプル商事" in email.body_text
        # No contact and no CSM: addressed to whoever reads it, signed by the team.
        fallback = {"ja": ("ご担当者様", "カスタマーサクセスチーム"),
                    "en": ("Dear 株式会社サンプル商事 team,", "The Nexpro Customer Success team")}[language]
        assert all(words in email.body_text for words in fallback)
    assert email.body_html.startswith("<!doctype html>") and f'lang="{language}"' in email.body_html


def test_a_known_csm_and_contact_sign_and_address_the_mail():
    email = render_email("onboarding_step_1", {"company_name": "株式会社サンプル商事", "contact_name": "山田 太郎",
                                               "csm_name": "佐藤 花子", "csm_email": "sato@nexpro.example",
                                               "outcome_goal": "月2回のウェビナー開催"})
    assert email.body_text.splitlines()[:2] == ["株式会社サンプル商事", "山田 太郎 様"]
    assert "担当の佐藤 花子です" in email.body_text and "sato@nexpro.example" in email.body_text
    assert "カスタマーサクセスチーム" not in email.body_text
    assert "「月2回のウェビナー開催」" in email.body_text


def test_html_escapes_the_context_and_links_urls():
    email = render_email("referral_ask", {"company_name": "A&B <script>", "nps_score": 10,
                                          "referral_url": "https://nexpro.example/referral?id=1&src=mail"})
    assert "<script>" not in email.body_html and "A&amp;B &lt;script&gt;" in email.body_html
    assert '<a href="https://nexpro.example/referral?id=1&amp;src=mail">' in email.body_html
    assert "A&B <script>" in email.body_text and "「10点」" in email.body_text


def test_a_missing_required_key_names_the_template_and_the_key():
    with pytest.raises(TemplateContextError, match=r"referral_ask\.ja\.j2.*company_name"):
        render_email("referral_ask", {"contact_name": "山田"})
    with pytest.raises(TemplateContextError, match=r"killswitch_alert\.en\.j2.*held_firings, companies"):
        render_email("killswitch_alert", {"reasons": ["x"], "held_firings": None}, "en")
    with pytest.raises(TemplateContextError, match="No e-mail template 'welcome'.*referral_ask"):
        render_email("welcome", BARE_COMPANY)
    with pytest.raises(TemplateContextError, match="no language 'fr'"):
        render_email("referral_ask", BARE_COMPANY, "fr")


# --- e-mail through the SMTP provider ------------------------------------------------------------------

def test_send_email_reaches_the_catcher_with_the_japanese_subject_intact(mail_catcher, smtp_connection,
                                                                         monkeypatch):
    monkeypatch.setenv("CS_MAIL_FROM", "ネクプロ カスタマーサクセス <success@nexpro.example>")
    email = render_email("referral_ask", {**BARE_COMPANY, "csm_name": "佐藤 花子"})
    before = len(mail_catcher.mailbox.entries())
    channels.send_email("yamada@customer.example", email)
    entries = mail_catcher.mailbox.entries()
    assert len(entries) == before + 1
    entry = entries[-1]
    assert entry["subject"] == email.subject
    assert email.subject == "【ネクプロ】アンケートへのご回答ありがとうございました（ご紹介のお願い）"
    assert entry["rcpt_tos"] == ["yamada@customer.example"] and entry["mail_from"] == "success@nexpro.example"
    message = mail_catcher.mailbox.message(entry)
    assert message["From"] == "ネクプロ カスタマーサクセス <success@nexpro.example>"
    html = message.get_body(("html",)).get_content()
    assert "株式会社サンプル商事" in html and "佐藤 花子" in html


def test_replies_go_to_the_companys_csm(mail_catcher, smtp_connection, monkeypatch):
    monkeypatch.setenv("CS_MAIL_FROM", "success@nexpro.example")
    channels.send_email("yamada@customer.example", render_email("referral_ask", BARE_COMPANY),
                        reply_to="佐藤 花子 <sato@nexpro.example>")
    message = mail_catcher.mailbox.message(mail_catcher.mailbox.entries()[-1])
    assert message["Reply-To"] == "佐藤 花子 <sato@nexpro.example>" and message["From"] == "success@nexpro.example"
    channels.send_email("yamada@customer.example", render_email("referral_ask", BARE_COMPANY))
    assert mail_catcher.mailbox.message(mail_catcher.mailbox.entries()[-1])["Reply-To"] is None, \
        "no CSM: replies go to the sender, the shared address"


def test_without_a_sender_setting_the_connections_from_email_is_used(mail_catcher, smtp_connection, monkeypatch):
    monkeypatch.delenv("CS_MAIL_FROM", raising=False)
    channels.send_email(["a@customer.example", "b@customer.example"], render_email("onboarding_step_2", BARE_COMPANY))
    entry = mail_catcher.mailbox.entries()[-1]
    assert entry["from"] == smtp_connection["extra"]["from_email"]
    assert entry["rcpt_tos"] == ["a@customer.example", "b@customer.example"]


def test_a_refused_recipient_fails_at_once_naming_it_and_the_servers_answer(mail_catcher, smtp_connection, caplog):
    before = len(mail_catcher.mailbox.entries())
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelError) as failure:
        channels.send_email("tanaka@closed.invalid", render_email("onboarding_step_1", BARE_COMPANY))
    message = str(failure.value)
    assert "tanaka@closed.invalid" in message and "550 5.1.1" in message and "smtp_default" in message
    assert not failure.value.transient and "retrying" not in caplog.text  # a permanent refusal: one attempt
    assert len(mail_catcher.mailbox.entries()) == before


def test_a_wrong_password_is_a_clear_error_without_the_password(mail_catcher, monkeypatch):
    connection = {**mail_catcher.airflow_connection(), "password": "wrong-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(connection))
    with pytest.raises(ChannelError, match="login refused 535") as failure:
        channels.send_email("yamada@customer.example", render_email("onboarding_step_1", BARE_COMPANY))
    assert "wrong-secret" not in str(failure.value)


def test_an_unreachable_server_is_retried_a_bounded_number_of_times(monkeypatch, caplog):
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": free_port(),
                  "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "cs@nexpro.example",
                            "retry_limit": 0, "timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_MAIL_DOWN", json.dumps(connection))
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelError, match="cannot reach the server") as failure:
        channels.send_email("yamada@customer.example", render_email("onboarding_step_1", BARE_COMPANY),
                            conn_id="mail_down")
    assert failure.value.transient and "mail_down" in str(failure.value)
    assert caplog.text.count("retrying") == channels.RETRY_ATTEMPTS - 1


def test_a_bad_address_is_refused_before_connecting():
    with pytest.raises(ValueError, match="Not an e-mail address"):
        channels.send_email("山田さん", RenderedEmail("s", "t", "<p>t</p>"), conn_id="no_such_connection")


# --- Slack through the webhook provider ----------------------------------------------------------------

def test_post_slack_lands_in_the_sink(slack_sink, slack_connection):
    message = channels.status_change_message([{"company_id": "C1", "company_name": "株式会社テスト",
                                               "status_transition": "Green→Red", "top_reasons": "ログイン減少",
                                               "csm_name": "佐藤"}])
    channels.post_slack(message["text"], message["blocks"])
    post = slack_sink.channel.posts()[-1]
    assert post["text"] == message["text"] and post["blocks"] == message["blocks"]


def test_a_slack_refusal_is_a_clear_error_and_not_retried(slack_sink, slack_connection, caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(ChannelError) as failure:
        channels.post_slack("x", blocks=[{"text": "a block without a type"}])
    message = str(failure.value)
    assert "400" in message and "invalid_blocks" in message and "slack_default" in message
    assert slack_connection["password"] not in message  # the webhook token is a secret
    assert not failure.value.transient and "retrying" not in caplog.text


def test_a_wrong_webhook_is_no_service(slack_sink, monkeypatch):
    connection = {**slack_sink.airflow_connection(), "password": "T000/B000/revoked"}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_OLD", json.dumps(connection))
    with pytest.raises(ChannelError, match="404 'no_service'"):
        channels.post_slack("hello", conn_id="slack_old")


def test_rate_limits_and_server_errors_are_retried(slack_sink, slack_connection, caplog):
    slack_sink.fail_next(500)
    slack_sink.fail_next(429)  # Retry-After: 1
    with caplog.at_level(logging.WARNING):
        channels.post_slack("after two failures")
    assert slack_sink.channel.posts()[-1]["text"] == "after two failures"
    assert caplog.text.count("retrying") == 2
    slack_sink.fail_next(500, count=channels.RETRY_ATTEMPTS)
    with pytest.raises(ChannelError, match="500 'internal_error'") as failure:
        channels.post_slack("never lands")
    assert failure.value.transient and slack_sink.channel.posts()[-1]["text"] != "never lands"


# --- Slack messages from the marts ---------------------------------------------------------------------

STATUS_ROWS = [{"company_id": "C2", "company_name": None, "status_transition": "Yellow→Green", "top_reasons": None,
                "csm_name": None, "score_date": date(2026, 11, 20)},
               {"company_id": "C1", "company_name": "A&B <株>", "previous_health_status": "Yellow",
                "health_status": "Red", "top_reasons": "login days in the last 30 days: 4 (Green needs 10)",
                "top_reasons_ja": "直近30日のログイン日数: 4日（Greenは10日以上）", "csm_name": "佐藤"}]


def test_status_change_message_lists_worst_first_with_fallbacks():
    message = channels.status_change_message(STATUS_ROWS, "ja")
    assert message["blocks"][0]["text"]["text"] == "ヘルススコアのステータス変化 (2026-11-20): 2社"
    assert message["blocks"][1]["elements"][0]["text"] == "悪化 1社 / 改善 1社"
    improved, worsened = (block["text"]["text"] for block in message["blocks"][2:])
    assert "(名称未登録) C2" in improved and "理由: 記録なし" in improved and "担当CSM: 未割当" in improved
    assert "*A&amp;B &lt;株&gt;*  Yellow → *Red*" in worsened and "直近30日のログイン日数: 4日" in worsened
    assert "login days" not in json.dumps(message, ensure_ascii=False), "one language per message"
    assert "A&amp;B &lt;株&gt; Yellow→Red" in message["text"]


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def test_status_change_message_in_english_speaks_english_with_singular_and_plural(monkeypatch):
    monkeypatch.setenv("CS_ACTIVATION_LANGUAGE", "en")
    message = channels.status_change_message(STATUS_ROWS)
    assert message["blocks"][0]["text"]["text"] == "Health status changes (2026-11-20): 2 companies"
    assert message["blocks"][1]["elements"][0]["text"] == "worse 1 company / better 1 company"
    improved, worsened = (block["text"]["text"] for block in message["blocks"][2:])
    assert "(no name) C2" in improved and "Reasons: none recorded" in improved and "CSM: unassigned" in improved
    assert "Reasons: login days in the last 30 days: 4 (Green needs 10)" in worsened
    frame = json.dumps(message, ensure_ascii=False).replace("株", "").replace("佐藤", "")  # names stay as they are
    assert not JAPANESE.search(frame), frame
    monkeypatch.setenv("CS_ACTIVATION_LANGUAGE", "english")
    with pytest.raises(ValueError, match="CS_ACTIVATION_LANGUAGE='english' .* ja or en"):
        channels.status_change_message(STATUS_ROWS)


def test_a_company_named_like_a_slack_command_pings_no_one(slack_sink, slack_connection):
    message = channels.status_change_message([{"company_id": "C9", "company_name": "<!channel> & <@U123>",
                                               "status_transition": "Green→Red", "top_reasons": "<!here>",
                                               "top_reasons_ja": "<!here>"}])
    channels.post_slack(message["text"], message["blocks"])
    post = slack_sink.channel.posts()[-1]
    for text in (post["text"], json.dumps(post["blocks"], ensure_ascii=False)):
        assert "<!channel>" not in text and "<@U123>" not in text and "<!here>" not in text
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in post["text"]


def test_status_change_message_stays_within_slacks_block_limit():
    rows = [{"company_id": f"C{n}", "company_name": f"会社{n}", "status_transition": "Green→Yellow"}
            for n in range(120)]
    message = channels.status_change_message(rows)
    assert len(message["blocks"]) <= 50
    assert "ほか 80社" in message["blocks"][-1]["elements"][0]["text"]
    assert channels.status_change_message([])["text"].endswith("（変化なし）")


MARTS = """
create schema marts;
create table marts.dim_companies (company_id text, company_name text, csm_name text);
create table marts.fct_health_scores (company_id text, score_date date, health_status text,
    previous_health_status text, status_transition text, top_reasons text, top_reasons_ja text, total_score numeric,
    is_low_coverage boolean, override_status text);
create table marts.fct_company_signals (company_id text, signal_key text, signal_kind text, signal_name text,
    signal_name_ja text, as_of_date date);
create table marts.fct_revenue_monthly (month_start date, closing_mrr numeric, customers_at_end int, nrr numeric,
    grr numeric, nrr_t12m numeric, grr_t12m numeric);
insert into marts.dim_companies values ('C1', '株式会社赤', '佐藤'), ('C2', '株式会社黄', null);
insert into marts.fct_health_scores values
    ('C1', '2026-11-20', 'Red', 'Green', 'Green→Red', 'login days: 4', 'ログイン日数: 4日', 1.2, false, null),
    ('C2', '2026-11-20', 'Yellow', 'Yellow', null, null, null, 2.1, true, null),
    ('C3', '2026-11-20', 'Green', 'Yellow', 'Yellow→Green', null, null, 2.8, false, 'Green'),
    ('C1', '2026-11-19', 'Green', 'Green', null, null, null, 2.9, false, null);
insert into marts.fct_company_signals values ('C1', 'usage_drop', 'risk', 'Usage drop', '利用の減少', '2026-11-20'),
    ('C1', 'key_person_lost', 'risk', 'Key person lost', 'キーパーソンの離脱', '2026-11-20'),
    ('C3', 'nps_promoter', 'expansion', 'NPS promoter', 'NPS推奨者', '2026-11-20'),
    ('C2', 'usage_drop', 'risk', 'Usage drop', '利用の減少', '2026-11-19');
insert into marts.fct_revenue_monthly values ('2026-10-01', 12500000, 120, 1.031, 0.97, 1.084, 0.95),
    ('2026-12-01', 1, 1, 9.99, 9.99, 9.99, 9.99);
"""


@pytest.fixture
def marts_url(warehouse_url) -> str:
    with psycopg.connect(warehouse_url, autocommit=True) as connection:
        connection.execute(MARTS)
    return warehouse_url


def digest(url: str, day: date) -> dict:
    from csops.activation.digest import digest_message, digest_of

    with psycopg.connect(url, autocommit=True) as connection:
        return digest_message(digest_of(connection, day))


def fired(url: str, day: date, outcomes: dict[str, int]) -> None:
    """Ledger rows of `day`: so many firings with each outcome."""
    from csops.activation.ledger import Firing, record_decisions

    with psycopg.connect(url, autocommit=True) as connection:
        record_decisions(connection, [Firing(f"{outcome}-{n}", f"C{n}", "referral_ask", day, "email", outcome, "",
                                             "someone@example.com")
                                      for outcome, count in outcomes.items() for n in range(count)], "test")


def test_daily_digest_reports_the_days_mix_changes_signals_and_nrr(marts_url):
    fired(marts_url, date(2026, 11, 20), {"skipped_no_recipient": 6, "skipped_cooldown": 1})
    message = digest(marts_url, date(2026, 11, 20))
    assert message["blocks"][0]["text"]["text"] == "CS デイリーダイジェスト 2026-11-20"
    text = message["blocks"][1]["text"]["text"]
    assert "*ヘルス* (3社): 🟢 Green 1 (33%) / 🟡 Yellow 1 (33%) / 🔴 Red 1 (33%)" in text
    assert "Green→Red 1社" in text and "Yellow→Green 1社" in text
    assert "*アクティブなシグナル*: 3件 — 拡大 1 (NPS推奨者 1); リスク 2 (" in text  # not the day before's
    assert "*NRR* 2026-10: 103.1%（直近12か月 108.4%）, MRR ¥12,500,000" in text  # not a month after the day
    assert "*プレイブック*: クールダウン中で見送り 1件、宛先なしで見送り 6件" in text
    assert not re.search(r"[a-z]+_[a-z_]+", message["text"]), "no raw key reaches a reader"
    empty = digest(marts_url, date(2026, 11, 18))["blocks"][1]["text"]["text"]
    assert "2026-11-18 のスコアがありません" in empty and "シグナル*: なし" in empty


def test_daily_digest_in_english_has_no_japanese_frame_and_counts_right(marts_url, monkeypatch):
    monkeypatch.setenv("CS_ACTIVATION_LANGUAGE", "en")
    fired(marts_url, date(2026, 11, 20), {"skipped_no_recipient": 6, "sent": 1})
    message = digest(marts_url, date(2026, 11, 20))
    text = message["blocks"][1]["text"]["text"]
    assert message["blocks"][0]["text"]["text"] == "CS daily digest 2026-11-20"
    assert "*Health* (3 companies): 🟢 Green 1 (33%)" in text
    assert "*Status changes*: Green→Red 1 company, Yellow→Green 1 company" in text
    assert "*Active signals*: 3 signals — expansion 1 (NPS promoter 1); risk 2 (" in text
    assert "*NRR* 2026-10: 103.1% (trailing 12 months 108.4%), MRR ¥12,500,000" in text
    assert "*Playbooks*: sent 1 firing, skipped (no recipient) 6 firings" in text
    assert not JAPANESE.search(json.dumps(message, ensure_ascii=False))
    assert not re.search(r"[a-z]+_[a-z_]+", message["text"]), "no raw key reaches a reader"


def test_connection_ids_are_the_providers_defaults():
    assert (settings.SMTP_CONN_ID, settings.SLACK_CONN_ID) == ("smtp_default", "slack_default")


def test_dashboard_links_appear_only_when_the_dashboards_url_is_set(marts_url, monkeypatch):
    assert "http" not in json.dumps(channels.status_change_message(STATUS_ROWS, "ja"))
    monkeypatch.setenv("CS_DASHBOARDS_URL", "https://cs.example.com/")
    message = channels.status_change_message(STATUS_ROWS, "ja")
    worsened = message["blocks"][3]["text"]["text"]
    assert "*<https://cs.example.com/customer?company=C1|A&amp;B &lt;株&gt;>*" in worsened
    text = digest(marts_url, date(2026, 11, 20))["blocks"][1]["text"]["text"]
    assert ("*ダッシュボード*: <https://cs.example.com/executive|エグゼクティブ> · "
            "<https://cs.example.com/manager|CSマネージャー>") in text
    monkeypatch.setenv("CS_DASHBOARDS_URL", "cs.example.com")
    with pytest.raises(ValueError, match="CS_DASHBOARDS_URL='cs.example.com' is not a web address"):
        channels.status_change_message(STATUS_ROWS, "ja")
