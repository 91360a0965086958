"""A local HTTP server playing Telnyx's TeXML REST API (``/v2/texml/Accounts/ACCT/…`` behind
a bearer token) for what the product asks of it besides placing calls: a call's status, the
recordings of a call and stopping one, deleting a recording; and, at ``/storage/RID``, the
audio as Telnyx's storage serves it (a signed link: no credentials expected, and any sent are
noted so a test can say none were)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "acct-texml-1"
API_KEY = "KEYtelnyx-test-0123"
APPLICATION = "app-texml-1"

_API = r"/v2/texml/Accounts/" + re.escape(ACCOUNT)
_SID = r"([\w:.-]+?)"


class TelnyxServer:
    def __init__(self) -> None:
        # Recording id -> audio (as tests/provider_server.py keeps it); the recordings of
        # calls with their status at the provider.
        self.recordings: dict[str, bytes] = {}
        self.running: dict[str, tuple[str, str]] = {}  # rid -> (call sid, status)
        self.calls: dict[str, tuple[str, int | None]] = {}  # call sid -> (status, duration)
        self.deleted: list[str] = []
        self.stopped: list[str] = []
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _answer(self, code: int, body: object | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _api(self) -> bool:
                auth = self.headers.get("Authorization")
                server.requests.append((self.command, self.path, auth))
                if self.path.startswith("/storage/"):
                    return True
                if auth != f"Bearer {API_KEY}":
                    self._answer(401, {"errors": [{"detail": "unauthorized"}]})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._api():
                    return
                if m := re.fullmatch(r"/storage/([\w-]+)", self.path):
                    audio = server.recordings.get(m.group(1))
                    if audio is None:
                        self._answer(404)
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                    self.send_header("Content-Length", str(len(audio)))
                    self.end_headers()
                    self.wfile.write(audio)
                elif m := re.fullmatch(_API + "/Calls/" + _SID + r"/Recordings\.json", self.path):
                    listed = [
                        {"sid": rid, "call_sid": call, "status": status}
                        for rid, (call, status) in server.running.items()
                        if call == m.group(1)
                    ]
                    self._answer(200, {"recordings": listed})
                elif m := re.fullmatch(_API + "/Calls/" + _SID, self.path):
                    known = server.calls.get(m.group(1))
                    if known is None:
                        self._answer(404, {"errors": [{"detail": "Resource not found"}]})
                    else:
                        self._answer(200, {"status": known[0], "duration": known[1]})
                else:
                    self._answer(404)

            def do_POST(self) -> None:
                if not self._api():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                form = self.rfile.read(length).decode()
                m = re.fullmatch(_API + "/Calls/" + _SID + r"/Recordings/([\w-]+)\.json", self.path)
                if m and m.group(2) in server.running and form == "Status=stopped":
                    server.running[m.group(2)] = (m.group(1), "stopped")
                    server.stopped.append(m.group(2))
                    self._answer(200, {"sid": m.group(2), "status": "stopped"})
                else:
                    self._answer(404)

            def do_DELETE(self) -> None:
                if not self._api():
                    return
                m = re.fullmatch(_API + r"/Recordings/([\w-]+)\.json", self.path)
                if m and server.recordings.pop(m.group(1), None) is not None:
                    server.running.pop(m.group(1), None)
                    server.deleted.append(m.group(1))
                    self._answer(204)
                else:
                    self._answer(404, {"errors": [{"detail": "Resource not found"}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def recording_url(self, rid: str) -> str:
        """Where a recording callback says the audio is (as tests/provider_server.py)."""
        return f"{self.base_url}/storage/{rid}"

    def api_url(self, path: str) -> str:
        return f"{self.base_url}/v2/texml/Accounts/{ACCOUNT}/{path}"

    def start(self) -> TelnyxServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
