"""The provider's REST API, behind a small protocol: fetch a recording, delete it at the
provider, stop a recording in progress, ask a call's status, and place, cancel or redirect
calls. Two implementations with httpx: Twilio's 2010-04-01 API (SignalWire offers the same
paths) and Telnyx's TeXML REST API (``/v2/texml/Accounts/…``, a bearer token). Tests point
their base URL at a local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

from permanence.config import Settings
from permanence.errors import ConfigurationError, PermanenceError

if TYPE_CHECKING:
    import httpx


class ProviderFailed(PermanenceError):
    """The telephony provider's API did not do what was asked (status code only)."""

    status_code = 502
    code = "provider_failed"


class CallsApi(Protocol):
    """What the queue, the transfers and the call-backs ask of the provider: place a call,
    stop one ringing, make one in progress run other TwiML (Twilio's and Telnyx's TeXML
    REST APIs both have them)."""

    def create_call(
        self, *, to: str, from_: str, url: str, status_callback: str, timeout: int
    ) -> str:
        """Place an outbound call (an operator's device) whose TwiML is at ``url``; returns
        its call id, or "" when the provider tells it only in the call's first webhook."""
        ...

    def cancel_call(self, call_sid: str) -> None:
        """Stop a call that is still ringing (an offer nobody needs any more)."""
        ...

    def redirect_call(self, call_sid: str, url: str) -> None:
        """Make a call in progress run the TwiML at ``url`` (a transfer)."""
        ...


class TelephonyApi(CallsApi, Protocol):
    def fetch_recording(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        """The audio at ``url`` (a provider URL), as a stream of byte chunks."""
        ...

    def delete_recording(self, recording_sid: str) -> None: ...

    def stop_recording(self, call_sid: str) -> None: ...

    def call_status(self, call_sid: str) -> tuple[str, int | None]:
        """The provider's status of a call and its duration in seconds (if over)."""
        ...


class TwilioRestApi:
    """Twilio's REST API (HTTP basic auth: account SID and auth token)."""

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, *, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (account_sid, auth_token)
        self._account_sid = account_sid
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioRestApi:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise ConfigurationError(
                "set PERMANENCE_TWILIO_ACCOUNT_SID and PERMANENCE_TWILIO_AUTH_TOKEN to use "
                "the provider's API"
            )
        return cls(
            settings.twilio_api_base_url, settings.twilio_account_sid, settings.twilio_auth_token
        )

    def _account_url(self, path: str) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self._account_sid}/{path}"

    @contextmanager
    def fetch_recording(self, url: str) -> Iterator[Iterator[bytes]]:
        import httpx

        # Only ever send our credentials to the configured API: a forged or mistaken URL in
        # a callback must not make us hand the auth token to another host (SSRF).
        if not url.startswith(self.base_url + "/"):
            raise ProviderFailed("the recording URL is not on the configured provider API")
        with (
            httpx.Client(auth=self._auth, timeout=self._timeout) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise ProviderFailed(f"fetching the recording failed (HTTP {resp.status_code})")
            yield resp.iter_bytes(64 * 1024)

    def delete_recording(self, recording_sid: str) -> None:
        import httpx

        url = self._account_url(f"Recordings/{recording_sid}.json")
        resp = httpx.delete(url, auth=self._auth, timeout=self._timeout)
        if resp.status_code not in (200, 204, 404):  # 404: already gone, which is the goal
            raise ProviderFailed(f"deleting the recording failed (HTTP {resp.status_code})")

    def stop_recording(self, call_sid: str) -> None:
        import httpx

        url = self._account_url(f"Calls/{call_sid}/Recordings/Twilio.CURRENT.json")
        resp = httpx.post(url, auth=self._auth, data={"Status": "stopped"}, timeout=self._timeout)
        if resp.status_code not in (200, 201):
            raise ProviderFailed(f"stopping the recording failed (HTTP {resp.status_code})")

    def call_status(self, call_sid: str) -> tuple[str, int | None]:
        import httpx

        url = self._account_url(f"Calls/{call_sid}.json")
        resp = httpx.get(url, auth=self._auth, timeout=self._timeout)
        if resp.status_code != 200:
            raise ProviderFailed(f"reading the call failed (HTTP {resp.status_code})")
        return _status_of(resp)

    def create_call(
        self, *, to: str, from_: str, url: str, status_callback: str, timeout: int
    ) -> str:
        import httpx

        resp = httpx.post(
            self._account_url("Calls.json"),
            auth=self._auth,
            data={
                "To": to,
                "From": from_,
                "Url": url,
                "Method": "POST",
                "StatusCallback": status_callback,
                "StatusCallbackMethod": "POST",
                "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
                "Timeout": str(timeout),
            },
            timeout=self._timeout,
        )
        if resp.status_code not in (200, 201):
            raise ProviderFailed(f"placing the call failed (HTTP {resp.status_code})")
        try:
            sid = str(resp.json()["sid"])
        except (ValueError, KeyError, TypeError):
            raise ProviderFailed("the provider's call record is not readable") from None
        return sid

    def cancel_call(self, call_sid: str) -> None:
        import httpx

        url = self._account_url(f"Calls/{call_sid}.json")
        resp = httpx.post(url, auth=self._auth, data={"Status": "canceled"}, timeout=self._timeout)
        if resp.status_code not in (200, 201, 404):  # 404: already over, which is the goal
            raise ProviderFailed(f"cancelling the call failed (HTTP {resp.status_code})")

    def redirect_call(self, call_sid: str, url: str) -> None:
        import httpx

        resp = httpx.post(
            self._account_url(f"Calls/{call_sid}.json"),
            auth=self._auth,
            data={"Url": url, "Method": "POST"},
            timeout=self._timeout,
        )
        if resp.status_code not in (200, 201):
            raise ProviderFailed(f"redirecting the call failed (HTTP {resp.status_code})")


class TelnyxTexmlApi:
    """Telnyx's TeXML REST API (a bearer token): the calls the queue and the call-backs make
    (place, cancel, redirect). Placing a call needs the TeXML application; Telnyx answers
    without the call's id, which its first webhook (``CallSid``) gives — so ``create_call``
    returns "" and the callers take the id from that webhook."""

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        api_key: str,
        application_sid: str,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._account_sid = account_sid
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._application_sid = application_sid
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> TelnyxTexmlApi:
        key, sid, app = (
            settings.telnyx_api_key,
            settings.telnyx_account_sid,
            settings.telnyx_texml_application_sid,
        )
        if not (key and sid and app):
            raise ConfigurationError(
                "set PERMANENCE_TELNYX_API_KEY, PERMANENCE_TELNYX_ACCOUNT_SID and "
                "PERMANENCE_TELNYX_TEXML_APPLICATION_SID to use Telnyx's TeXML API"
            )
        return cls(settings.telnyx_api_base_url, sid, key, app)

    def _calls_url(self, call_sid: str | None = None) -> str:
        base = f"{self.base_url}/v2/texml/Accounts/{self._account_sid}/Calls"
        return base if call_sid is None else f"{base}/{call_sid}"

    def create_call(
        self, *, to: str, from_: str, url: str, status_callback: str, timeout: int
    ) -> str:
        import httpx

        resp = httpx.post(
            self._calls_url(),
            headers=self._headers,
            json={
                "ApplicationSid": self._application_sid,
                "To": to,
                "From": from_,
                "Url": url,
                "UrlMethod": "POST",
                "StatusCallback": status_callback,
                "StatusCallbackMethod": "POST",
                "StatusCallbackEvent": "initiated ringing answered completed",
                "Timeout": timeout,
            },
            timeout=self._timeout,
        )
        if resp.status_code not in (200, 201):
            raise ProviderFailed(f"placing the call failed (HTTP {resp.status_code})")
        return ""

    def _update(self, call_sid: str, data: dict[str, str], what: str, ok: tuple[int, ...]) -> None:
        import httpx

        resp = httpx.post(
            self._calls_url(call_sid), headers=self._headers, data=data, timeout=self._timeout
        )
        if resp.status_code not in ok:
            raise ProviderFailed(f"{what} failed (HTTP {resp.status_code})")

    def cancel_call(self, call_sid: str) -> None:
        self._update(call_sid, {"Status": "canceled"}, "cancelling the call", (200, 201, 404))

    def redirect_call(self, call_sid: str, url: str) -> None:
        self._update(call_sid, {"Url": url, "Method": "POST"}, "redirecting the call", (200, 201))

    def _account_url(self, path: str) -> str:
        return f"{self.base_url}/v2/texml/Accounts/{self._account_sid}/{path}"

    @contextmanager
    def fetch_recording(self, url: str) -> Iterator[Iterator[bytes]]:
        import httpx

        # The token only ever goes to the configured API. Telnyx may announce the audio at a
        # storage host of its own (a signed, short-lived link): fetched without credentials,
        # over TLS only.
        on_api = url.startswith(self.base_url + "/")
        if not on_api and not url.startswith("https://"):
            raise ProviderFailed("the recording URL is neither on the provider API nor HTTPS")
        headers = self._headers if on_api else {}
        with (
            httpx.Client(headers=headers, timeout=self._timeout) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code != 200:
                raise ProviderFailed(f"fetching the recording failed (HTTP {resp.status_code})")
            yield resp.iter_bytes(64 * 1024)

    def delete_recording(self, recording_sid: str) -> None:
        import httpx

        resp = httpx.delete(
            self._account_url(f"Recordings/{recording_sid}.json"),
            headers=self._headers,
            timeout=self._timeout,
        )
        if resp.status_code not in (200, 204, 404):  # 404: already gone, which is the goal
            raise ProviderFailed(f"deleting the recording failed (HTTP {resp.status_code})")

    def stop_recording(self, call_sid: str) -> None:
        import httpx

        # TeXML has no "current recording" alias: the call's recordings are listed and each
        # one still running is stopped.
        listed = httpx.get(
            self._account_url(f"Calls/{call_sid}/Recordings.json"),
            headers=self._headers,
            timeout=self._timeout,
        )
        if listed.status_code != 200:
            code = listed.status_code
            raise ProviderFailed(f"listing the call's recordings failed (HTTP {code})")
        try:
            running = [
                str(r["sid"])
                for r in listed.json()["recordings"]
                if r.get("status") in ("in-progress", "paused")
            ]
        except (ValueError, KeyError, TypeError):
            raise ProviderFailed("the provider's recording list is not readable") from None
        for sid in running:
            resp = httpx.post(
                self._account_url(f"Calls/{call_sid}/Recordings/{sid}.json"),
                headers=self._headers,
                data={"Status": "stopped"},
                timeout=self._timeout,
            )
            if resp.status_code not in (200, 201, 404):  # 404: it ended meanwhile
                raise ProviderFailed(f"stopping the recording failed (HTTP {resp.status_code})")

    def call_status(self, call_sid: str) -> tuple[str, int | None]:
        import httpx

        resp = httpx.get(self._calls_url(call_sid), headers=self._headers, timeout=self._timeout)
        if resp.status_code != 200:
            raise ProviderFailed(f"reading the call failed (HTTP {resp.status_code})")
        return _status_of(resp)


def _status_of(resp: httpx.Response) -> tuple[str, int | None]:
    """A call resource's ``status`` and ``duration`` (seconds, when over), as both APIs
    give them."""
    try:
        body = resp.json()
        status = str(body["status"])
        raw = body.get("duration")
        duration = int(raw) if raw not in (None, "") else None
    except (ValueError, KeyError, TypeError):
        raise ProviderFailed("the provider's call record is not readable") from None
    return status, duration


def recording_url_allowed(settings: Settings, provider: str, url: str) -> bool:
    """Whether the audio a recording callback announces may be fetched: Twilio's on its
    configured API only (fetched with the credentials); Telnyx's on its configured API or
    over HTTPS elsewhere (its storage's signed links, fetched without the token)."""
    if provider == "telnyx":
        base = settings.telnyx_api_base_url.rstrip("/") + "/"
        return url.startswith((base, "https://"))
    return url.startswith(settings.twilio_api_base_url.rstrip("/") + "/")


def provider_api(settings: Settings, provider: str) -> TelephonyApi:
    """The REST API of ``provider`` (the name a call came in under: ``twilio`` or
    ``telnyx``); ConfigurationError when its credentials are not set."""
    if provider == "telnyx":
        return TelnyxTexmlApi.from_settings(settings)
    return TwilioRestApi.from_settings(settings)


def configured_apis(settings: Settings) -> dict[str, TelephonyApi]:
    """Each provider whose REST API credentials are set, by name."""
    apis: dict[str, TelephonyApi] = {}
    for name in ("twilio", "telnyx"):
        try:
            apis[name] = provider_api(settings, name)
        except ConfigurationError:
            continue
    return apis
