"""Outside effects of delivery, behind small protocols: webhooks over HTTPS and SMS through a
gateway. E-mail uses ``permanence.mail.Mailer``.

A failed send raises ``SendFailed`` with a *code* (``http_503``, ``timeout``…): codes go to the
ledger and the logs, so they never carry an address, a number or a response body.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from permanence.config import Settings
from permanence.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx


class SendFailed(Exception):
    """A send did not succeed. ``code`` is safe to store and log; ``retry`` says whether
    another attempt may succeed."""

    def __init__(self, code: str, *, retry: bool = True) -> None:
        super().__init__(code)
        self.code = code
        self.retry = retry


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    body: bytes
    headers: dict[str, str]


class WebhookSender(Protocol):
    def post(self, request: WebhookRequest) -> None: ...


class SmsSender(Protocol):
    def send(self, to: str, text: str) -> None: ...


def _http_failure(exc: httpx.HTTPError) -> SendFailed:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return SendFailed("timeout")
    if isinstance(exc, httpx.ConnectError):
        # Certificate problems surface as connect errors; tell them apart for the operator.
        cause = exc.__context__ or exc.__cause__
        return SendFailed("tls_error" if isinstance(cause, ssl.SSLError) else "connect_error")
    return SendFailed("http_error")


def _status_failure(prefix: str, status: int) -> SendFailed:
    # 410 Gone: the receiver says the endpoint is retired; other statuses may be transient.
    return SendFailed(f"{prefix}_{status}", retry=status != 410)


class HttpWebhookSender:
    """POSTs signed JSON; any 2xx is delivered. Redirects are not followed (the signature
    and the body must reach the URL the client declared, not wherever it points)."""

    def __init__(self, *, timeout: float = 10.0, verify: ssl.SSLContext | str | bool = True):
        self._client_args = {"timeout": timeout, "verify": verify, "follow_redirects": False}

    def post(self, request: WebhookRequest) -> None:
        import httpx

        try:
            with httpx.Client(**self._client_args) as client:  # type: ignore[arg-type]
                response = client.post(request.url, content=request.body, headers=request.headers)
        except httpx.HTTPError as exc:
            raise _http_failure(exc) from None
        if not 200 <= response.status_code < 300:
            raise _status_failure("http", response.status_code)


class HttpSmsGateway:
    """Sends an SMS through a Twilio-compatible Messages API: a form POST (To, From, Body)
    with HTTP basic authentication. Any 2xx means the gateway accepted it (``sent``)."""

    def __init__(
        self,
        url: str,
        *,
        sender: str,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        import httpx

        parts = urlsplit(url)
        loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ConfigurationError("PERMANENCE_SMS_GATEWAY_URL must be an https:// URL")
        self.url = url
        self.sender = sender
        self.auth = httpx.BasicAuth(user, password) if user and password else None
        self._client_args = {"timeout": timeout, "verify": verify, "follow_redirects": False}

    def send(self, to: str, text: str) -> None:
        import httpx

        form = {"To": to, "From": self.sender, "Body": text}
        try:
            with httpx.Client(**self._client_args) as client:  # type: ignore[arg-type]
                if self.auth is None:
                    response = client.post(self.url, data=form)
                else:
                    response = client.post(self.url, data=form, auth=self.auth)
        except httpx.HTTPError as exc:
            raise _http_failure(exc) from None
        if not 200 <= response.status_code < 300:
            raise _status_failure("sms_http", response.status_code)


def sms_gateway_for(settings: Settings) -> SmsSender | None:
    """The configured SMS gateway, or None when none is configured."""
    if not settings.sms_gateway_url:
        return None
    if not settings.sms_from:
        raise ConfigurationError("PERMANENCE_SMS_FROM is not set: SMS cannot be sent")
    return HttpSmsGateway(
        settings.sms_gateway_url,
        sender=settings.sms_from,
        user=settings.sms_user,
        password=settings.sms_password,
    )
