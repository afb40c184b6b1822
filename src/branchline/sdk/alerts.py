"""`run.alert()`: record an alert on the run, rate-limited per title, and deliver it.

Delivery (a Slack-compatible webhook, email over SMTP) happens on one background thread per
run: `alert()` returns after a journal append. A channel that fails is reported once and the
alert stays recorded on the run. `finish` waits a bounded time for queued deliveries.
"""

from __future__ import annotations

import enum
import math
import queue
import smtplib
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from branchline.sdk.context import ShutdownPhase
from branchline.vocab import RecordKind

if TYPE_CHECKING:
    from branchline.sdk.context import RunContext

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "AlertDelivery",
    "AlertLevel",
    "normalize_level",
    "send_alert",
    "wait_seconds",
]

DEFAULT_WAIT_SECONDS = 60.0
WEBHOOK_TIMEOUT = 5.0
SMTP_TIMEOUT = 10.0
# The longest `finish` waits for alerts still queued for delivery.
DRAIN_TIMEOUT = 15.0
_TITLE_LIMIT = 256  # the store's column width


class AlertLevel(enum.StrEnum):
    """Alert severities (wandb's `AlertLevel`)."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def normalize_level(level: object) -> str:
    """ "INFO", "WARN" or "ERROR" from a string or an enum member; ValueError otherwise."""
    if level is None:
        return AlertLevel.INFO.value
    value = level.value if isinstance(level, enum.Enum) else level
    if isinstance(value, str) and value.upper() in AlertLevel.__members__:
        return value.upper()
    raise ValueError(f"level={level!r} is not valid; use 'INFO', 'WARN' or 'ERROR' (or branchline AlertLevel).")


def wait_seconds(wait_duration: object) -> float:
    """Seconds from a number or a timedelta (None = one minute)."""
    if wait_duration is None:
        return DEFAULT_WAIT_SECONDS
    if isinstance(wait_duration, timedelta):
        seconds = wait_duration.total_seconds()
    elif isinstance(wait_duration, int | float) and not isinstance(wait_duration, bool):
        seconds = float(wait_duration)
    else:
        raise TypeError(f"wait_duration must be seconds (int or float) or a timedelta, got {wait_duration!r}.")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"wait_duration must be >= 0 seconds, got {wait_duration!r}.")
    return seconds


@dataclass(frozen=True)
class _Alert:
    title: str
    text: str
    level: str
    ts: float
    run_path: str
    run_name: str


def send_alert(
    ctx: RunContext,
    title: str,
    text: str,
    level: object,
    wait_duration: object,
    *,
    run_path: str,
    run_name: str,
) -> None:
    """Validate, rate-limit per title, record an ALERT and queue its delivery. Never blocks on I/O."""
    level_name = normalize_level(level)
    wait = wait_seconds(wait_duration)
    title = str(title)
    text = str(text)
    if ctx.settings.mode == "disabled":
        return
    delivery = _delivery_for(ctx)
    now = time.monotonic()
    last = delivery.last_sent.get(title)
    if last is not None and now - last < wait:
        ctx.terminal.log(
            f"alert {title!r} not sent: one with this title went out {now - last:.1f}s ago (wait_duration={wait:g}s)."
        )
        return
    delivery.last_sent[title] = now
    alert = _Alert(title[:_TITLE_LIMIT], text, level_name, time.time(), run_path, run_name)
    ctx.journal.write(RecordKind.ALERT, alert.title, alert.text, alert.level, alert.ts)
    if delivery.has_channels:
        delivery.submit(alert)


def _delivery_for(ctx: RunContext) -> AlertDelivery:
    found = ctx.part(AlertDelivery)
    if found is not None:
        return found
    delivery = AlertDelivery(ctx)
    # Stopped before the console capture, so a delivery warning is captured.
    ctx.attach(delivery, ShutdownPhase.DELIVER_ALERTS)
    return delivery


def _redact(url: str) -> str:
    """scheme://host[:port] only: webhook paths (Slack's) and SMTP URLs carry secrets."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def _message(alert: _Alert) -> str:
    return f"[{alert.level}] {alert.title}\n{alert.text}\nRun: {alert.run_name} ({alert.run_path})"


def _recipients(value: object) -> list[str]:
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return []
    return [str(item).strip() for item in items if str(item).strip()]


class AlertDelivery:
    """One run's alert channels and the daemon thread that delivers to them (a telemetry part)."""

    def __init__(self, ctx: RunContext) -> None:
        settings = ctx.settings
        self._ctx = ctx
        #: When each title last went out (monotonic seconds): alerts are rate-limited per title.
        self.last_sent: dict[str, float] = {}
        self._webhook = settings.alert_webhook_url or None
        self._smtp_url = settings.smtp_url or None
        self._recipients = _recipients(settings.alert_email_to)
        if bool(self._smtp_url) != bool(self._recipients):
            missing = "smtp_url" if self._recipients else "alert_email_to"
            ctx.warn_once("alert:email-config", f"alert emails are off: {missing} is not set.")
        self._email = bool(self._smtp_url and self._recipients)
        self._queue: queue.Queue[_Alert | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def has_channels(self) -> bool:
        return bool(self._webhook or self._email)

    def submit(self, alert: _Alert) -> None:
        if self._stopped:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="branchline-alerts", daemon=True)
            self._thread.start()
        self._queue.put(alert)

    def stop(self) -> None:
        """Deliver what is queued, waiting at most DRAIN_TIMEOUT seconds. Never raises."""
        self._stopped = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(DRAIN_TIMEOUT)
        if thread.is_alive():
            self._ctx.warn_once(
                "alert:drain",
                f"alert delivery did not finish within {DRAIN_TIMEOUT:g}s; the alerts are recorded on the run.",
            )

    def _loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if self._webhook:
                try:
                    self._post(self._webhook, alert)
                except Exception as exc:  # reported once per channel; the run goes on
                    self._ctx.warn_once(
                        "alert:webhook",
                        f"could not deliver an alert to the webhook {_redact(self._webhook)}: {exc!r}. "
                        "Alerts are still recorded on the run; this is reported once.",
                    )
            if self._email:
                assert self._smtp_url is not None
                try:
                    _send_email(self._smtp_url, self._recipients, alert)
                except Exception as exc:
                    self._ctx.warn_once(
                        "alert:email",
                        f"could not email an alert via {_redact(self._smtp_url)}: {exc!r}. "
                        "Alerts are still recorded on the run; this is reported once.",
                    )

    @staticmethod
    def _post(url: str, alert: _Alert) -> None:
        import httpx  # imported here: it costs more at init than alerts are worth

        payload: dict[str, Any] = {
            # `text` is all a Slack (or Mattermost, Discord /slack) incoming webhook needs.
            "text": _message(alert),
            "branchline": {
                "title": alert.title,
                "text": alert.text,
                "level": alert.level,
                "timestamp": alert.ts,
                "run": alert.run_path,
                "run_name": alert.run_name,
            },
        }
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT)
        response.raise_for_status()


def _send_email(smtp_url: str, recipients: list[str], alert: _Alert) -> None:
    """Send one alert by SMTP. `smtp_url`: smtp://[user:pass@]host[:port][?from=addr],
    smtps:// for implicit TLS, smtp+starttls:// to upgrade a plain connection."""
    parts = urlsplit(smtp_url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+starttls"):
        raise ValueError(f"smtp_url scheme {parts.scheme!r} is not smtp, smtps or smtp+starttls")
    host = parts.hostname or "localhost"
    port = parts.port or {"smtp": 25, "smtps": 465, "smtp+starttls": 587}[scheme]
    sender = parse_qs(parts.query).get("from", [f"branchline@{socket.gethostname() or 'localhost'}"])[0]
    message = EmailMessage()
    message["Subject"] = f"[branchline] {alert.level}: {alert.title}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(_message(alert) + "\n")
    client_cls = smtplib.SMTP_SSL if scheme == "smtps" else smtplib.SMTP
    with client_cls(host, port, timeout=SMTP_TIMEOUT) as client:
        if scheme == "smtp+starttls":
            client.starttls()
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
