"""The auditor's evidence pack and the requirements matrix it carries."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from permanence.compliance import matrix
from permanence.compliance.duties import DUTIES
from permanence.config import Settings
from permanence.demo.loader import demo_callers, load_demo
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli

TESTS = Path(__file__).resolve().parents[1]
EXPECTED = {
    "README.txt",
    "art30.html",
    "compliance-checks.json",
    "audit-verification.json",
    "training.csv",
    "rights-register.csv",
    "breaches.csv",
    "subprocessors.csv",
    "contracts.csv",
    "dpia.csv",
    "requirements-matrix.csv",
    "audits.csv",
    "audit-actions.csv",
    "SHA256SUMS",
    "SHA256SUMS.sig",
    "public-key.pem",
}


def _needles() -> list[str]:
    out = []
    for callers in demo_callers().values():
        for c in callers:
            digits = c.phone.replace(" ", "")
            out += [
                f"{c.first} {c.last}",
                f"{c.last} {c.first}",
                c.phone,
                digits,
                "+33" + digits[1:],
            ]
            if c.email:
                out.append(c.email)
    return out


@pytest.mark.gdpr("Art. 28(3)(h)", "Art. 5(2)")
def test_the_pack_holds_every_register_no_personal_data_and_verifies(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    load_demo(rt, calls_per_account=5)
    # A request received 40 days ago and not answered: the register says the deadline was
    # missed; one received today is open.
    import datetime as dt

    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext, Role
    from permanence.rights import service as rights
    from permanence.rights.model import Kind

    caller = demo_callers()["cabinet-moreau-avocats"][0]
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        account = account_by_slug(s, "cabinet-moreau-avocats").id
    ctx = AccessContext(role=Role.CLIENT, reason="test", actor_id=account, account_id=account)
    for days in (40, 0):
        with rt.db.session(ctx) as s:
            rights.submit(
                s,
                rt.keyring,
                rights.Intake(
                    kind=Kind.ACCESS,
                    requester=rights.Requester(phone=caller.phone, name=caller.last),
                    verified_by_controller=True,
                    received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days),
                ),
            )
    rt.close()
    env = cli_env(settings)
    out = tmp_path / "preuves.zip"
    done = run_cli(env, "compliance", "evidence", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "audit chain intact: yes" in done.stdout
    z = zipfile.ZipFile(out)
    assert {n for n in z.namelist() if not n.startswith("dpia-")} == EXPECTED
    # Art. 35: the demo's DPIAs, listed and each version in full.
    assert sorted(n for n in z.namelist() if n.startswith("dpia-")) == [
        "dpia-cabinet-lefevre-health-v1.json",
        "dpia-plomberie-durand-recording-v1.json",
    ]
    text = {n: z.read(n).decode() for n in z.namelist() if n not in {"SHA256SUMS.sig"}}
    # Each register is there, with content.
    assert "Registre des activités de traitement" in text["art30.html"]
    assert '"code": "audit.chain"' in text["compliance-checks.json"]
    assert '"ok": true' in text["audit-verification.json"]
    assert '"signature"' in text["audit-verification.json"]
    assert len(text["training.csv"].splitlines()) > 2  # the demo's staff
    assert len(text["subprocessors.csv"].splitlines()) > 1
    assert len(text["contracts.csv"].splitlines()) > 1
    assert ",scc-2021/915," in text["contracts.csv"]
    assert "cabinet-lefevre,health,1,1," in text["dpia.csv"]
    register = text["rights-register.csv"].splitlines()
    assert [line.rsplit(",", 1)[1] for line in register[1:]] == ["overdue", "open"]
    for duty in DUTIES:
        assert duty.ref in text["requirements-matrix.csv"]
    assert "tests/integration/test_evidence.py::" in text["requirements-matrix.csv"]
    # No caller's name, phone or e-mail anywhere in the pack.
    needles = _needles()
    assert len(needles) > 100
    for name, body in text.items():
        found = [n for n in needles if n in body]
        assert found == [], f"personal data in {name}: {found[:3]}"
    # The pack verifies, by our command and by the documented openssl + sha256sum check.
    assert run_cli(env, "compliance", "verify-evidence", str(out)).returncode == 0
    if shutil.which("openssl") and shutil.which("sha256sum"):
        unpacked = tmp_path / "unpacked"
        z.extractall(unpacked)
        for argv in (
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "public-key.pem",
                "-rawin",
                "-in",
                "SHA256SUMS",
                "-sigfile",
                "SHA256SUMS.sig",
            ],
            ["sha256sum", "-c", "SHA256SUMS"],
        ):
            check = subprocess.run(argv, cwd=unpacked, capture_output=True, text=True, check=False)
            assert check.returncode == 0, check.stdout + check.stderr
    # A changed file is named.
    tampered = tmp_path / "altere.zip"
    with zipfile.ZipFile(tampered, "w") as t:
        for n in z.namelist():
            body = z.read(n)
            t.writestr(n, body.replace(b"ok", b"KO") if n == "training.csv" else body)
    bad = run_cli(env, "compliance", "verify-evidence", str(tampered))
    assert bad.returncode == 1
    assert "training.csv: content differs from its signed SHA-256" in bad.stderr
    # Another deployment's key does not vouch for it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    other = tmp_path / "autre.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    foreign = run_cli(env, "compliance", "verify-evidence", str(out), "--public-key", str(other))
    assert foreign.returncode == 1 and "signature" in foreign.stderr
    assert run_cli(env, "compliance", "evidence", "--out", str(out)).returncode == 1  # no overwrite


def test_the_shipped_requirements_matrix_is_the_one_the_tests_give() -> None:
    """requirements.json ships in the package (an installed deployment has no tests/);
    regenerate it with: python -m permanence.compliance.matrix tests >
    src/permanence/compliance/requirements.json"""
    assert matrix.shipped() == matrix.scan(TESTS)


def test_every_duty_has_a_test_and_every_marker_names_a_duty() -> None:
    proofs = matrix.scan(TESTS)
    known = {d.ref for d in DUTIES}
    assert sorted(set(proofs) - known) == [], "a gdpr marker names an unknown duty"
    untested = [d.ref for d in DUTIES if not proofs.get(d.ref)]
    assert untested == [], f"duties without a test: {untested}"


def test_the_scan_reads_markers_from_source(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_x.py").write_text(
        "import pytest\n\n"
        '@pytest.mark.gdpr("Art. 30", "Art. 32")\n'
        '@pytest.mark.parametrize("a", [1])\n'
        "def test_one(a):\n    pass\n\n"
        "@pytest.mark.slow\n"
        "def test_two():\n    pass\n"
    )
    assert matrix.scan(tests) == {
        "Art. 30": ["tests/test_x.py::test_one"],
        "Art. 32": ["tests/test_x.py::test_one"],
    }
    rows = {r["ref"]: r for r in matrix.rows(matrix.scan(tests))}
    assert rows["Art. 30"]["tests"] == ["tests/test_x.py::test_one"]
    assert rows["Art. 33(2)"]["tests"] == []


def test_a_pack_that_is_not_one_is_refused() -> None:
    from permanence.compliance.evidence import verify_pack

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("README.txt", "rien")
    assert verify_pack(buf.getvalue()) != []
    assert verify_pack(b"not a zip") != []
