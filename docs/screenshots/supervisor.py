"""Renders the supervisor page over the demo data for the README screenshot.

    .venv/bin/python docs/screenshots/supervisor.py   # then chromium takes the picture

The page is fetched signed in (TestClient), its chart images saved beside it, and headless
Chromium renders the saved page: no server or cookie juggling needed.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient

from permanence import schema
from permanence.config import Settings
from permanence.demo.loader import DEMO_PASSWORD, load_demo
from permanence.runtime import Runtime
from permanence.web.app import create_app

OUT = Path(__file__).with_name("supervisor.png")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="permanence-shot-"))
    url = f"sqlite:///{tmp / 'demo.db'}"
    schema.upgrade(url)
    rt = Runtime.from_settings(
        Settings(
            data_dir=tmp, database_url=url, master_key=base64.b64encode(os.urandom(32)).decode()
        )
    )
    lines = load_demo(rt, calls_per_account=40)
    uris = dict(re.findall(r"staff \w+\s+(\S+)\s+TOTP: (\S+)", "\n".join(lines)))
    app = create_app(rt)

    def login(email: str) -> TestClient:
        c = TestClient(app)
        code = pyotp.parse_uri(uris[email]).now()
        r = c.post(
            "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD, "totp": code}
        )
        r.raise_for_status()
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    # Two operators signed in: one on a break, one on a call; a caller waiting.
    a = login("operatrice@permanence.example")
    a.post("/api/v1/presence", json={"state": "break"})
    b = login("operateur@permanence.example")
    call = b.post("/api/v1/calls", json={"dialled": "+33240000001", "caller_number": "0199001111"})
    call.raise_for_status()
    b.post(f"/api/v1/accounts/{call.json()['account_id']}/calls/{call.json()['id']}/answer")
    b.post("/api/v1/calls", json={"dialled": "+33478000001", "caller_number": "0199002222"})
    sup = login("superviseure@permanence.example")
    html = sup.get("/supervision").text
    page = tmp / "page"
    page.mkdir()
    for n, src in enumerate(sorted(set(re.findall(r'src="(/api/v1/[^"]+)"', html)))):
        name = f"chart{n}.svg"
        (page / name).write_bytes(sup.get(src.replace("&amp;", "&")).content)
        html = html.replace(f'src="{src}"', f'src="{name}"')
    # The interface's own stylesheet, saved beside the page; scripts are not needed for a picture.
    (page / "app.css").write_bytes(sup.get("/static/app.css").content)
    html = html.replace('href="/static/app.css"', 'href="app.css"')
    html = re.sub(r'<script src="/static/[^"]+" defer></script>', "", html)
    (page / "index.html").write_text(html.replace('<meta http-equiv="refresh"', "<meta"), "utf-8")
    subprocess.run(  # noqa: S603 - fixed arguments, local file
        [
            "/usr/bin/chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1500",
            f"--screenshot={OUT}",
            (page / "index.html").as_uri(),
        ],
        check=True,
        capture_output=True,
    )
    rt.close()
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
