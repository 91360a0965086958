"""A local HTTP server playing a Twilio-compatible provider's REST API: the recording's
audio (behind HTTP basic auth), deleting a recording, stopping a recording in progress, and
sending an SMS (the Messages API: a form POST of To, From and Body), and placing a call (the
Calls API: each request's form is recorded, the new call's sid answered)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789"


class ProviderServer:
    def __init__(self) -> None:
        self.recordings: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.stopped: list[str] = []
        # CallSid -> (status, duration) as GET .../Calls/SID.json answers it.
        self.calls: dict[str, tuple[str, int | None]] = {}
        # Failures to play before answering GETs of recordings: HTTP codes, 0 = hang (timeout).
        self.fail_next: list[int] = []
        self.requests: list[tuple[str, str, bool]] = []  # method, path, authorised
        self.hang_seconds = 2.0
        # SMS accepted by the Messages API: (To, From, Body); failures to play first (HTTP codes).
        self.sms: list[tuple[str, str, str]] = []
        self.sms_fail_next: list[int] = []
        # Calls placed through the Calls API (POST .../Calls.json): each form (first values);
        # failures to play first (HTTP codes).
        self.created_calls: list[dict[str, str]] = []
        self.create_fail_next: list[int] = []
        # Updates of a call (POST .../Calls/SID.json): (sid, form).
        self.call_updates: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                ok = self.headers.get("Authorization") == f"Basic {expected}"
                server.requests.append((self.command, self.path, ok))
                if not ok:
                    self.send_response(401)
                    self.end_headers()
                return ok

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                c = re.fullmatch(r"/2010-04-01/Accounts/\w+/Calls/(\w+)\.json", self.path)
                if c:
                    known = server.calls.get(c.group(1))
                    if known is None:
                        self.send_response(404)
                        self.end_headers()
                        return
                    body = json.dumps(
                        {
                            "sid": c.group(1),
                            "status": known[0],
                            "duration": (None if known[1] is None else str(known[1])),
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if server.fail_next:
                    code = server.fail_next.pop(0)
                    if code == 0:  # never answers in time
                        time.sleep(server.hang_seconds)
                        code = 504
                    self.send_response(code)
                    self.end_headers()
                    return
                m = re.fullmatch(r"/2010-04-01/Accounts/\w+/Recordings/(\w+)", self.path)
                audio = server.recordings.get(m.group(1)) if m else None
                if audio is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)

            def do_DELETE(self) -> None:
                if not self._authorised():
                    return
                m = re.fullmatch(r"/2010-04-01/Accounts/\w+/Recordings/(\w+)\.json", self.path)
                if m and server.recordings.pop(m.group(1), None) is not None:
                    server.deleted.append(m.group(1))
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if re.fullmatch(r"/2010-04-01/Accounts/\w+/Messages\.json", self.path):
                    if server.sms_fail_next:
                        self.send_response(server.sms_fail_next.pop(0))
                        self.end_headers()
                        return
                    form = parse_qs(body.decode())
                    server.sms.append((form["To"][0], form["From"][0], form["Body"][0]))
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"status": "queued"}')
                    return
                if re.fullmatch(r"/2010-04-01/Accounts/\w+/Calls\.json", self.path):
                    if server.create_fail_next:
                        self.send_response(server.create_fail_next.pop(0))
                        self.end_headers()
                        return
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    form["StatusCallbackEvent"] = " ".join(
                        parse_qs(body.decode()).get("StatusCallbackEvent", [])
                    )
                    server.created_calls.append(form)
                    sid = f"CA{len(server.created_calls):032x}"
                    payload = json.dumps({"sid": sid, "status": "queued"}).encode()
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                u = re.fullmatch(r"/2010-04-01/Accounts/\w+/Calls/(\w+)\.json", self.path)
                if u:
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    server.call_updates.append((u.group(1), form))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"sid": u.group(1)}).encode())
                    return
                m = re.fullmatch(
                    r"/2010-04-01/Accounts/\w+/Calls/(\w+)/Recordings/Twilio\.CURRENT\.json",
                    self.path,
                )
                if m and body == b"Status=stopped":
                    server.stopped.append(m.group(1))
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"status": "stopped"}')
                else:
                    self.send_response(400)
                    self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def created_sid(self, index: int) -> str:
        """The sid answered for the ``index``-th call placed (0-based)."""
        return f"CA{index + 1:032x}"

    def sms_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

    def recording_url(self, sid: str) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
