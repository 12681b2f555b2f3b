"""The activation channels: customer e-mails rendered from templates and sent over SMTP, and Slack posts.

- `render_email(key, context, language)` renders `templates/<key>.<language>.j2` (blocks `subject` and
  `body`, plain text) and wraps the body in `templates/_layout.html.j2` (autoescaped) for the HTML part.
  Optional fields may be missing or None: the templates fall back (no contact name → 「ご担当者様」, no CSM
  → the team signs). A key listed in REQUIRED_KEYS that is missing fails with the template and key named.
- `send_email(to, rendered)` sends through Airflow's SMTP provider (connection `smtp_default`) and
  `post_slack(text, blocks)` through the Slack incoming-webhook provider (connection `slack_default`).
  Transient failures (connection refused or dropped, SMTP 4xx, Slack 429/5xx) are retried a bounded
  number of times with a growing pause; what still fails raises ChannelError naming the recipient or
  webhook and quoting the server's answer. Secrets (passwords, the webhook token) never appear in it.
- `status_change_message(rows)` builds the Slack payload (`{"text": …, "blocks": […]}`) of the day's status
  changes; every name in it, the notification text included, is escaped (a company called `<!channel>`
  pings nobody).
- `ChannelSenders` is what the playbooks, the digest and the killswitch send through: Salesforce by the
  platform's writer, e-mail and Slack by the functions above.
"""

from __future__ import annotations

import logging
import re
import smtplib
import urllib.error
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import formataddr, parseaddr
from pathlib import Path

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound
from markupsafe import Markup, escape
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from csops import settings
from csops.activation.words import say
from csops.summary import HEALTH_STATUSES

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
# What each template cannot do without; every other field it uses is optional and has a fallback.
REQUIRED_KEYS = {
    "referral_ask": ("company_name",),  # optional: contact_name, csm_name, csm_email, nps_score, outcome, referral_url
    "onboarding_step_1": ("company_name",),  # optional: contact_name, csm_name, csm_email, outcome_goal, guide_url
    "onboarding_step_2": ("company_name",),  # optional: contact_name, csm_name, csm_email, guide_url
    "onboarding_step_3": ("company_name",),  # optional: contact_name, csm_name, csm_email, outcome_goal
    "killswitch_alert": ("reasons", "held_firings", "companies"),  # optional: run_date, details_url
}
# Bounded retries of transient failures: attempts in all, and the first pause (doubling, at most 30 s).
RETRY_ATTEMPTS = 3
RETRY_WAIT_SECONDS = 2.0
MAX_RETRY_WAIT_SECONDS = 30.0
# Slack allows 50 blocks a message; a status-change alert lists this many companies and counts the rest.
MAX_LISTED_COMPANIES = 40
STATUS_ICONS = {"Red": "🔴", "Yellow": "🟡", "Green": "🟢"}


class TemplateContextError(ValueError):
    """A template was asked for that does not exist, or its context lacks a required key."""


class ChannelError(RuntimeError):
    """A message the SMTP server or Slack did not accept, after the retries a transient failure gets."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


# --- templates ----------------------------------------------------------------------------------------

URL = re.compile(r"https?://[^\s<>\"（）「」、。]+")


def _linkify(text: str) -> Markup:
    """A line of text for HTML: escaped, with its http(s) URLs made links."""
    parts, end = [], 0
    for match in URL.finditer(text):
        url = escape(match[0])
        parts += [escape(text[end:match.start()]), Markup(f'<a href="{url}">{url}</a>')]
        end = match.end()
    return Markup("").join([*parts, escape(text[end:])])


def _environment(html: bool) -> Environment:
    environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=html, undefined=ChainableUndefined,
                              keep_trailing_newline=False, trim_blocks=False,
                              finalize=lambda value: "" if value is None else value)
    environment.filters["linkify"] = _linkify
    return environment


_TEXT = _environment(html=False)
_HTML = _environment(html=True)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def render_email(template_key: str, context: Mapping, language: str = "ja") -> RenderedEmail:
    """The e-mail `template_key` in `language` ('ja' or 'en') for `context` (a company's fields)."""
    if template_key not in REQUIRED_KEYS:
        raise TemplateContextError(f"No e-mail template {template_key!r}; the templates are "
                                   f"{', '.join(sorted(REQUIRED_KEYS))}.")
    if language not in settings.LANGUAGES:
        raise TemplateContextError(f"Template {template_key!r} has no language {language!r}; use one of "
                                   f"{', '.join(settings.LANGUAGES)}.")
    name = f"{template_key}.{language}.j2"
    missing = [key for key in REQUIRED_KEYS[template_key] if not _present(context.get(key))]
    if missing:
        raise TemplateContextError(f"Template {name}: required key(s) {', '.join(missing)} missing or empty in the "
                                   f"context (it has: {', '.join(sorted(context)) or 'nothing'}).")
    # Blank optional fields count as missing, so the templates' fallbacks apply to None and '' alike.
    values = {key: value for key, value in context.items() if _present(value)}
    try:
        template = _TEXT.get_template(name)
    except TemplateNotFound as error:
        raise TemplateContextError(f"Template file {TEMPLATES_DIR / name} is missing ({error}).") from None
    blocks = template.new_context(values)
    subject = " ".join("".join(template.blocks["subject"](blocks)).split())
    body = re.sub(r"\n{3,}", "\n\n", "".join(template.blocks["body"](blocks)).strip()) + "\n"
    paragraphs = [paragraph.splitlines() for paragraph in body.strip().split("\n\n")]
    body_html = _HTML.get_template("_layout.html.j2").render(language=language, subject=subject,
                                                             paragraphs=paragraphs)
    return RenderedEmail(subject=subject, body_text=body, body_html=body_html)


# --- retries ------------------------------------------------------------------------------------------

def _wait(retry_state) -> float:
    error = retry_state.outcome.exception()
    pause = RETRY_WAIT_SECONDS * 2 ** (retry_state.attempt_number - 1)
    if getattr(error, "retry_after", None):
        pause = max(pause, error.retry_after)
    return min(pause, MAX_RETRY_WAIT_SECONDS)


def _with_retries(action, what: str):
    """Run `action`, retrying the ChannelErrors it raises with transient=True; the last error propagates."""
    def before_sleep(retry_state) -> None:
        log.warning("%s: attempt %d failed (%s); retrying", what, retry_state.attempt_number,
                    retry_state.outcome.exception())

    retrying = Retrying(stop=stop_after_attempt(RETRY_ATTEMPTS), wait=_wait, reraise=True,
                        retry=retry_if_exception(lambda error: isinstance(error, ChannelError) and error.transient),
                        before_sleep=before_sleep)
    return retrying(action)


# --- e-mail -------------------------------------------------------------------------------------------

def _header_address(value: str) -> str:
    """`Name <address>` with a non-ASCII name encoded for the header (RFC 2047), the address left readable."""
    name, address = parseaddr(value)
    if not address or "@" not in address:
        raise ValueError(f"Not an e-mail address: {value!r}")
    Address(addr_spec=address)  # raises on an invalid address
    return formataddr((name, address), charset="utf-8") if name else address


def _smtp_error(error: Exception, recipients: list[str]) -> ChannelError | None:
    """The ChannelError for an SMTP failure (transient for 4xx, dropped connections, network errors)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        answers = "; ".join(f"{address}: {code} {message.decode(errors='replace')}"
                            for address, (code, message) in error.recipients.items())
        return ChannelError(f"refused recipient(s): {answers}",
                            transient=all(400 <= code < 500 for code, _ in error.recipients.values()))
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        kind = "login refused" if isinstance(error, smtplib.SMTPAuthenticationError) else "the server answered"
        return ChannelError(f"{kind} {error.smtp_code} {message}", transient=400 <= error.smtp_code < 500)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return ChannelError(f"the server closed the connection ({error})", transient=True)
    if isinstance(error, smtplib.SMTPException):
        return ChannelError(f"{type(error).__name__}: {error}", transient=False)
    if isinstance(error, OSError):  # refused, reset, timed out, name not resolved
        return ChannelError(f"cannot reach the server ({type(error).__name__}: {error})", transient=True)
    if type(error).__name__ == "AirflowException" and "Unable to connect" in str(error):
        return ChannelError(f"cannot reach the server ({error})", transient=True)
    return None


def send_email(to: str | Iterable[str], rendered: RenderedEmail, conn_id: str = settings.SMTP_CONN_ID, *,
               from_email: str | None = None, reply_to: str | None = None) -> None:
    """Send `rendered` to `to` through the SMTP server of Airflow connection `conn_id`.

    The sender is `from_email`, else settings.mail_from() (CS_MAIL_FROM), else the connection's
    `from_email` extra; replies go to `reply_to` (the company's CSM) when given, else to the sender. The
    subject and body travel as UTF-8 (the subject RFC 2047-encoded)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError(f"send_email: no recipient for {rendered.subject!r}")
    for address in recipients:
        _header_address(address)
    sender = from_email or settings.mail_from()
    headers = {"Reply-To": _header_address(reply_to)} if reply_to else None
    what = f"E-mail {rendered.subject!r} to {', '.join(recipients)} (connection {conn_id})"

    def attempt() -> None:
        try:
            with SmtpHook(smtp_conn_id=conn_id) as hook:
                hook.send_email_smtp(to=recipients, subject=rendered.subject, html_content=rendered.body_html,
                                     from_email=_header_address(sender) if sender else None, mime_charset="utf-8",
                                     custom_headers=headers)
        except Exception as error:
            failure = _smtp_error(error, recipients)
            if failure is None:
                raise
            raise ChannelError(f"{what} failed: {failure}", transient=failure.transient) from error

    _with_retries(attempt, what)
    log.info("sent %s", what)


# --- Slack --------------------------------------------------------------------------------------------

def post_slack(text: str, blocks: list[dict] | None = None, conn_id: str = settings.SLACK_CONN_ID) -> None:
    """Post to the Slack incoming webhook of Airflow connection `conn_id` (`text` is the notification and
    fallback text when `blocks` are given)."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=conn_id)
    endpoint = None

    def attempt() -> None:
        nonlocal endpoint
        if endpoint is None:
            # The host, without the token (the URL's last part is a secret).
            endpoint = (hook.get_connection(conn_id).host or "hooks.slack.com/services").rstrip("/")
        what = f"Slack post {text[:60]!r} to the webhook of connection {conn_id} ({endpoint})"
        try:
            response = hook.client.send(text=text, blocks=blocks)
        except (urllib.error.URLError, OSError) as error:
            raise ChannelError(f"{what} failed: cannot reach Slack ({error})", transient=True) from error
        if response.status_code == 200:
            return
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        if isinstance(retry_after, list):
            retry_after = retry_after[0]
        raise ChannelError(f"{what} failed: Slack answered {response.status_code} {response.body!r}",
                           transient=response.status_code == 429 or response.status_code >= 500,
                           retry_after=float(retry_after) if retry_after else None)

    _with_retries(attempt, f"Slack post (connection {conn_id})")


def _mrkdwn(value) -> str:
    """Text for Slack's mrkdwn: &, < and > escaped as Slack asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _transition(row: Mapping) -> tuple[str, str]:
    before, after = row.get("previous_health_status"), row.get("health_status")
    if not (before and after) and row.get("status_transition"):
        before, _, after = str(row["status_transition"]).partition("→")
    return before or "?", after or "?"


def status_change_message(rows: Iterable[Mapping], language: str | None = None) -> dict:
    """A Slack payload listing health status changes: company, from → to, top reasons, CSM, in `language`
    (default CS_ACTIVATION_LANGUAGE).

    Each row needs company_id or company_name and status_transition (or previous_health_status and
    health_status); top_reasons (English), top_reasons_ja, csm_name and score_date are optional."""
    language = language or settings.activation_language()
    rows = list(rows)
    day = next((row["score_date"] for row in rows if row.get("score_date")), None)
    title = say("status.title", language, day=f" ({day})" if day else "",
                companies=say("companies", language, n=len(rows)))
    if not rows:
        text = f"*{title}*\n{say('status.none', language)}"
        return {"text": f"{title}{say('status.none_short', language)}",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    worse = sum(HEALTH_STATUSES.index(_transition(row)[1]) > HEALTH_STATUSES.index(_transition(row)[0])
                for row in rows if {*_transition(row)} <= set(HEALTH_STATUSES))
    counts = say("status.counts", language, worse=say("companies", language, n=worse),
                 better=say("companies", language, n=len(rows) - worse))
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
              {"type": "context", "elements": [{"type": "mrkdwn", "text": counts}]}]
    reasons_column = "top_reasons_ja" if language == "ja" else "top_reasons"
    for row in rows[:MAX_LISTED_COMPANIES]:
        before, after = _transition(row)
        name = _mrkdwn(row.get("company_name") or f"{say('status.unnamed', language)} {row.get('company_id', '?')}")
        if row.get("company_id") and (link := settings.dashboard_link("customer", company=row["company_id"])):
            name = f"<{link}|{name}>"
        reasons = row.get(reasons_column) or say("status.no_reasons", language)
        csm = row.get("csm_name") or say("status.no_csm", language)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"{STATUS_ICONS.get(after, '•')} *{name}*  {_mrkdwn(before)} → *{_mrkdwn(after)}*\n"
            f"{say('status.reasons', language)}: {_mrkdwn(reasons)}\n"
            f"{say('status.csm', language)}: {_mrkdwn(csm)}")[:3000]}})
    if len(rows) > MAX_LISTED_COMPANIES:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": say(
            "status.more", language, companies=say("companies", language, n=len(rows) - MAX_LISTED_COMPANIES))}]})
    listed = ", ".join(f"{_mrkdwn(row.get('company_name') or row.get('company_id'))} "
                       f"{_mrkdwn('→'.join(_transition(row)))}" for row in rows[:5])
    return {"text": f"{title}: {listed}{say('status.more_short', language) if len(rows) > 5 else ''}",
            "blocks": blocks}


# --- the channels a firing goes out through ------------------------------------------------------------

class ChannelSenders:
    """The real channels: Salesforce through the platform's writer (`sf`, a logged-in simple-salesforce
    client), e-mail and Slack through Airflow's `smtp_default` and `slack_default` connections."""

    FIRING_KEY_FIELD = "Playbook_Firing_Key__c"

    def __init__(self, sf=None) -> None:
        self.sf = sf

    def upsert(self, object_name: str, records: list[dict]) -> dict[str, tuple[bool, str]]:
        from csops.activation.salesforce_writer import WriteError, upsert

        try:
            outcomes = upsert(self.sf, object_name, self.FIRING_KEY_FIELD, records).outcomes
        except WriteError as error:  # what was answered before the call that failed; the rest is unknown
            log.error("Salesforce %s upsert stopped: %s", object_name, error)
            outcomes = error.result.outcomes
        return {outcome.key: (True, outcome.record_id or "") if outcome.success
                else (False, f"{outcome.error_code}: {outcome.message}") for outcome in outcomes}

    def find(self, object_name: str, firing_keys: list[str]) -> dict[str, str]:
        found = {}
        for start in range(0, len(firing_keys), 200):
            keys = ", ".join("'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"
                             for key in firing_keys[start:start + 200])
            result = self.sf.query_all(f"SELECT Id, {self.FIRING_KEY_FIELD} FROM {object_name} "
                                       f"WHERE {self.FIRING_KEY_FIELD} IN ({keys})", include_deleted=True)
            found.update({record[self.FIRING_KEY_FIELD]: record["Id"] for record in result["records"]})
        return found

    def send_email(self, to: str, template_key: str, context: dict, reply_to: str | None = None) -> None:
        send_email(to, render_email(template_key, context, settings.activation_language()), reply_to=reply_to)

    def post_status_changes(self, rows: list[dict]) -> None:
        post_slack(**status_change_message(rows))

    def post_digest(self, digest: dict) -> None:
        from csops.activation.digest import digest_message

        post_slack(**digest_message(digest))

    def post_alert(self, text: str) -> None:
        post_slack(_mrkdwn(text))
