"""Mutation testing of the modules where a silent mistake breaks the law or security.

    python3 dev.py mutate                       every target (see TARGETS), two at a time
    python3 dev.py mutate rights/clock.py ...   only these targets (path under src/permanence/)

Each target is mutated by cosmic-ray in a private copy of the tree (the working tree is never
touched), and every mutant runs the target's own tests. A mutant is *killed* when a test fails,
*survives* when they all pass. Two kinds of mutant are set aside as equivalent before running,
so they never count for or against the score:

- mutants inside annotations (``from __future__ import annotations``: never evaluated);
- mutants on a line marked ``# pragma: no mutate (reason)``: the reason says why no test can
  tell the mutant from the original (a cache size, say); `docs/mutation.md` lists them.

A target may be *scoped* to some of its functions or methods (``Target.functions``, a method
written ``Class.method``, the module's own statements ``<module>``): mutants outside them are
counted apart as "out of scope" (another helper owns that code, or a table is pinned by a
known-value test instead; `docs/mutation.md` says which and why).

A target's tests run on SQLite unless ``--postgresql`` is given: they then run on the database
named by PERMANENCE_TEST_DATABASE_URL (and ..._MIGRATION_URL, ..._APP_ROLE, as in `.ci/run`),
where row-level security applies, with the target's ``postgresql_tests`` added (tests that
skip on SQLite). A target marked ``postgresql`` (the tenant checks) is skipped without it,
and with it runs its tests on SQLite and then on PostgreSQL (POSIX ``sh`` and ``env``).
Without ``--postgresql`` those variables are not passed on: a run is SQLite's whatever the shell.

The score of a target is killed / (killed + survived); the target is TARGET_SCORE (90 %). The
command prints one line per target and every survivor with its diff, and exits 1 when a
target is under the target score.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "src/permanence"
TARGET_SCORE = 0.90
PRAGMA = re.compile(r"#\s*pragma:\s*no mutate")
PG_VARIABLES = (
    "PERMANENCE_TEST_DATABASE_URL",
    "PERMANENCE_TEST_DATABASE_MIGRATION_URL",
    "PERMANENCE_TEST_DATABASE_APP_ROLE",
    "PERMANENCE_TEST_DATABASE_RESET_URL",
)


@dataclass(frozen=True)
class Target:
    """The tests that must catch a module's mutants, optionally only those in some functions."""

    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    # Tests that need neither tests/conftest.py nor a pytest plugin run without them: about
    # 10 s less per mutant on a loaded machine (the imports dominate a small test file).
    standalone: bool = False
    # Needs ``--postgresql``, and its tests then run on both databases, SQLite first: on
    # SQLite alone its mutants would survive for want of row-level security, on PostgreSQL
    # alone those of the SQLite branches (the writers' lock, no ``set_config``).
    postgresql: bool = False
    # Added to ``tests`` on PostgreSQL: tests of PostgreSQL-only branches (they skip on SQLite).
    postgresql_tests: tuple[str, ...] = ()


def _t(
    *tests: str,
    functions: tuple[str, ...] = (),
    standalone: bool = False,
    postgresql: bool = False,
    postgresql_tests: tuple[str, ...] = (),
) -> Target:
    return Target(tests, functions, standalone, postgresql, postgresql_tests)


# module (under src/permanence/) -> the tests that must catch its mutants.
TARGETS: dict[str, Target] = {
    "rights/clock.py": _t(
        "tests/unit/test_rights_clock.py",
        "tests/unit/test_rights_clock_table.py",
        "tests/integration/test_rights_reminders.py",
    ),
    "telephony/signatures.py": _t("tests/unit/test_signatures.py"),
    # The IBAN length table is pinned by a known-value test (one registry example per country);
    # its ~400 number mutants would cost an hour for what that test already proves.
    "pii/checksums.py": _t(
        "tests/pii/test_checksums.py",
        standalone=True,
        functions=(
            "luhn_valid",
            "siren_valid",
            "siret_valid",
            "iban_valid",
            "_nir_number",
            "nir_key",
            "nir_valid",
        ),
    ),
    "crypto/normalize.py": _t(
        "tests/unit/test_crypto.py", "tests/unit/test_crypto_known_values.py", standalone=True
    ),
    "crypto/primitives.py": _t(
        "tests/unit/test_crypto.py", "tests/unit/test_crypto_known_values.py", standalone=True
    ),
    "web/security.py": _t("tests/web/test_security_headers.py"),
    # What an operator may write into a message: the mandate's fields, typed and bounded.
    "mandates/forms.py": _t(
        "tests/unit/test_mandate_forms.py",
        "tests/unit/test_mandate_field_values.py",
        standalone=True,
        functions=(
            "form_for",
            "_form_field",
            "validate_submission",
            "validate_fields",
            "_is_blank",
            "_special_category_error",
            "_clean",
            "_to_bool",
            "_to_int",
            "_to_date",
            "_to_datetime",
        ),
    ),
    # Who is calling: session cookie, CSRF header, session memory, API keys, account in path.
    "web/deps.py": _t(
        "tests/unit/test_web_deps.py",
        standalone=True,
        functions=(
            "Principal",
            "principal",
            "_key",
            "_recently_checked",
            "_check_session",
            "forget_session",
            "forget_user",
            "require",
            "account_context",
            "secure_cookies",
        ),
    ),
    "retention/service.py": _t(
        "tests/unit/test_retention_cutoff.py", standalone=True, functions=("cutoff",)
    ),
    # The hash and the canonical body, and the write path (ADR 0035): entries held in the
    # transaction, checked as codes, numbered, hashed and written at commit or before a
    # statement on the audit tables, the head read once per transaction. (`search`, a
    # reader's filters, is not a target.)
    "audit/service.py": _t(
        "tests/unit/test_audit_known_values.py",
        "tests/unit/test_audit_write_path.py",
        standalone=True,
        # Two writers at once: the head is locked at commit, not at the first entry.
        postgresql_tests=(
            "tests/integration/test_audit.py::test_a_slow_transaction_does_not_hold_back_another_ones_audit_entries",
        ),
        functions=(
            "_check_code",
            "entry_hash",
            "canonical",
            "record",
            "key_label",
            "_Chain",
            "_chain",
            "_write_pending",
            "_touches_audit",
            "_before_orm_query",
            "_at_commit",
            "_forget",
            "_at_commit_end",
            # The head's statements (its row, locked and moved), its key in the identity map,
            # the tables a statement is checked against, the steps registered at commit.
            "<module>",
        ),
    ),
    "audit/integrity.py": _t(
        "tests/unit/test_audit_known_values.py",
        standalone=True,
        functions=(
            "verify",
            "_walked_in_two",
            "prev_at_anchor",
            "_column_differing",
            "_message",
            "_signature_ok",
            "create_checkpoint",
        ),
    ),
    # The chain's walk (the per-entry checks verify ran inline before ADR 0042) and the second
    # process that walks the first half of a long SQLite chain: run as a script by the tests.
    "audit/chain.py": _t(
        "tests/unit/test_audit_known_values.py",
        "tests/unit/test_audit_chain_walk.py",
        standalone=True,
    ),
    # Blind-index lookups: identifiers sealed with their indexes, candidates fetched by index
    # and kept only on an exact match of every identifier given; another account's caller
    # is not found; OpenDSR's hashed e-mail, whose index an account's older callers get on
    # its first hashed lookup. (register/update_identity/identity are the rights and audit side.)
    "subjects/service.py": _t(
        "tests/integration/test_subjects.py",
        functions=(
            "Identity",
            "check_account",
            "_seal_identity",
            "get",
            "_candidates",
            "find",
            "_index_hashed_emails",
            "email_sha256",
            "_opened",
            "_matches",
        ),
    ),
    # The keyring's lookup keys and the crypto-shredding path: index keys per account and
    # column, a subject's cipher (and its cache), the key's destruction. Account keys and
    # their rotation are the forensic work's (issue 19); the master key is in masterkey.py,
    # the erasure-epoch layer in epochlayer.py (a target of its own).
    "crypto/keyring.py": _t(
        "tests/integration/test_subjects.py",
        # The erasure marks a rotation due; a row read just before a rotation is read again.
        "tests/integration/test_erasure_epochs.py::test_rotation_rewraps_survivors_and_destroys_the_old_epoch",
        "tests/integration/test_erasure_epochs.py::test_a_key_row_read_just_before_a_rotation_is_read_again_not_taken_for_erased",
        functions=(
            "Keyring._index_root",
            "Keyring.index_key",
            "Keyring.index",
            "Keyring.phone_index",
            "Keyring.cipher",
            "Keyring.destroy_subject_key",
        ),
    ),
    # The erasure-epoch layer (ADR 0029): the outer wrapping of subject keys and its AD, the
    # current epoch (made on first use), when a rotation is due (after an erasure, on a
    # schedule) and the rotation itself, rule by rule on a bare layer and three tables.
    "crypto/epochlayer.py": _t(
        "tests/unit/test_epoch_layer.py",
        standalone=True,
        # PostgreSQL's lock on the current epoch: a transaction wrapping under the epoch a
        # rotation retires holds it back, and does not hold back another such transaction.
        postgresql_tests=(
            "tests/integration/test_erasure_epochs.py::test_a_key_being_created_under_the_old_epoch_is_not_left_behind",
            "tests/integration/test_erasure_epochs.py::test_transactions_wrapping_under_the_epoch_do_not_wait_for_each_other",
        ),
    ),
    # Who is on call and when the service answers: the rota read in the mandate's zone (a
    # wrong contact at 19:00 in Martinique was a real bug), the window past midnight, its
    # days and validity; the opening ranges, exceptions and holidays in force at a moment.
    # (Validation and the plain words are pinned by the same tests, but are not targets.)
    "mandates/oncall.py": _t(
        "tests/unit/test_delivery_rules.py", "tests/unit/test_hours.py", standalone=True
    ),
    "mandates/hours.py": _t(
        "tests/unit/test_hours.py",
        "tests/unit/test_delivery_rules.py",
        standalone=True,
        functions=(
            "Span",
            "_minutes",
            "parse_span",
            "HolidayRule.name_on",
            "_calendar",
            "HoursException.first",
            "HoursException.last",
            "HoursException.covers",
            "HoursException.spans",
            "Hours.zone",
            "Hours.day",
            "Hours.status",
            "Hours.is_open",
        ),
    ),
    "mandates/sections.py": _t(
        "tests/unit/test_delivery_rules.py",
        "tests/unit/test_hours.py",
        standalone=True,
        functions=("OnCallContact.starts", "OnCallContact.ends", "OnCallContact.covers"),
    ),
    # The erasure journal a restore obeys: its line format and MAC, the file (and where its
    # numbering continues), what a journal covers, the table, the merge of sources.
    # (ErasureMirror.from_settings only reads settings.)
    "backup/journal.py": _t(
        "tests/unit/test_erasure_journal.py",
        standalone=True,
        # read_database reads account by account under row-level security.
        postgresql_tests=("tests/integration/test_erasure_journal_table.py",),
        functions=(
            "JournalEntry",
            "_canonical",
            "line_of",
            "parse_lines",
            "read_file",
            "ErasureMirror.append",
            "ErasureMirror.entries",
            "_last_seq",
            "covers",
            "record",
            "ensure",
            "read_database",
            "_uuid",
            "merge",
        ),
    ),
    # The journal replayed on a restored database: every entry carried out again, account by
    # account, files deleted after the commit, absent accounts counted, only once. (Reading
    # the target database and the mirror, replay_journal/_target, is driven end to end by
    # tests/integration/test_backup.py through the command line: too slow per mutant.)
    "backup/replay.py": _t("tests/integration/test_journal_replay.py", functions=("replay",)),
    # The off-boarding's replay step, moved from backup/replay.py (ADR 0038): the journal
    # hands an account's entry to it.
    "contracts/offboarding.py": _t(
        "tests/integration/test_journal_replay.py", functions=("replay_offboarding",)
    ),
    # The tenant checks every service relies on: the context a unit of work carries (what
    # each service's "another account's object is a 404" compares with), the account it is
    # switched to, and the row-level-security setting that follows it on PostgreSQL. The
    # per-route answer (a 404 like a nonexistent id) is tests/web/test_isolation_matrix.py's,
    # through the whole application: too slow per mutant. `account_context`, the web half, is
    # in the web/deps.py target. `Database.__init__` registers that setting on both session
    # factories; its other lines make the engine, the two factories and the writers' lock,
    # and import the modules whose session events every unit of work needs (a cold start).
    "db.py": _t(
        "tests/integration/test_tenant_context.py",
        "tests/integration/test_tenancy.py",
        "tests/unit/test_delivery_registries.py::test_a_database_registers_the_aggregates_session_events_from_a_cold_start",
        postgresql=True,
        functions=(
            "Database.__init__",
            "Database.session",
            "_set_pg_account",
            "switch_account",
            "ctx_of",
            "acting_for",
        ),
    ),
}


@dataclass
class Outcome:
    target: str
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    out_of_scope: int = 0
    incompetent: int = 0
    seconds: float = 0.0
    survivors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def score(self) -> float:
        tried = self.killed + self.survived
        return self.killed / tried if tried else 0.0


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, as (line, column), of every annotation in ``source``."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        notes: list[ast.expr | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
        elif isinstance(node, ast.arg | ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is None or note.end_lineno is None or note.end_col_offset is None:
                continue
            spans.append(((note.lineno, note.col_offset), (note.end_lineno, note.end_col_offset)))
    return spans


MODULE_LEVEL = "<module>"


def function_spans(source: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(first, last) line of every top-level function or class in ``names``; a name written
    ``Class.method`` is that method of a top-level class, and ``<module>`` (MODULE_LEVEL)
    stands for the module's own statements: those outside functions, classes and imports
    (constants, statements built at import, registrations)."""
    spans = []
    found: set[str] = set()
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in ast.parse(source).body:
        if not isinstance(node, kinds):
            if MODULE_LEVEL in names and not isinstance(node, ast.Import | ast.ImportFrom):
                if node.end_lineno is not None:
                    spans.append((node.lineno, node.end_lineno))
                found.add(MODULE_LEVEL)
            continue
        candidates: list[tuple[str, ast.stmt]] = [(node.name, node)]
        if isinstance(node, ast.ClassDef):
            candidates += [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, kinds)]
        for name, d in candidates:
            assert isinstance(d, kinds)
            if name in names and d.end_lineno is not None:
                first = min([d.lineno, *(dec.lineno for dec in d.decorator_list)])
                spans.append((first, d.end_lineno))
                found.add(name)
    missing = set(names) - found
    if missing:
        raise SystemExit(f"no such function in the target: {', '.join(sorted(missing))}")
    return spans


def _in_scope(scope: list[tuple[int, int]] | None, start: tuple[int, int]) -> bool:
    return scope is None or any(lo <= start[0] <= hi for lo, hi in scope)


def _equivalent(source_lines: list[str], spans: list, start: tuple[int, int]) -> bool:
    line = source_lines[start[0] - 1] if 0 < start[0] <= len(source_lines) else ""
    if PRAGMA.search(line):
        return True
    return any(lo <= start < hi for lo, hi in spans)


def run_target(target: str, spec: Target, timeout: float, postgresql: bool = False) -> Outcome:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    tests = list(spec.tests) + (list(spec.postgresql_tests) if postgresql else [])
    standalone = spec.standalone and not (postgresql and spec.postgresql_tests)
    out = Outcome(target)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="permanence-mutate-") as tmp:
        work = Path(tmp)
        for name in ("src", "tests"):
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
        module = f"{PACKAGE}/{target}"
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        command += ["--noconftest", *tests] if standalone else tests
        if postgresql and spec.postgresql:
            # SQLite first (no migration: the cheaper kill), then PostgreSQL.
            on_sqlite = ["env", *(a for n in PG_VARIABLES for a in ("-u", n)), *command]
            command = ["sh", "-c", f"{shlex.join(on_sqlite)} && {shlex.join(command)}"]
        (work / "cr.toml").write_text(
            "[cosmic-ray]\n"
            f'module-path = "{module}"\n'
            f"timeout = {timeout}\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(shlex.join(command))}\n"
            '[cosmic-ray.distributor]\nname = "local"\n'
        )
        env = {**os.environ, "PYTHONPATH": f"{work / 'src'}{os.pathsep}{work}"}
        if not postgresql:
            for name in PG_VARIABLES:
                env.pop(name, None)
        if standalone:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        baseline = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        if baseline.returncode != 0:
            out.error = "the target's tests fail without any mutation:\n" + baseline.stdout[-2000:]
            return out
        cr = [sys.executable, "-m", "cosmic_ray.cli"]
        session = work / "session.sqlite"
        subprocess.run([*cr, "init", "cr.toml", str(session)], cwd=work, env=env, check=True)
        source = (work / module).read_text()
        lines, spans = source.splitlines(), annotation_spans(source)
        scope = function_spans(source, spec.functions) if spec.functions else None
        outside: set[str] = set()
        with use_db(str(session), WorkDB.Mode.open) as db:
            for item in db.work_items:
                starts = [tuple(m.start_pos) for m in item.mutations]
                if not all(_in_scope(scope, s) for s in starts):
                    outside.add(item.job_id)
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
                elif all(_equivalent(lines, spans, s) for s in starts):
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        subprocess.run(
            [*cr, "exec", "cr.toml", str(session)],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        with use_db(str(session), WorkDB.Mode.open) as db:
            items = {item.job_id: item for item in db.work_items}
            for job_id, result in db.results:
                if job_id in outside:
                    out.out_of_scope += 1
                elif result.worker_outcome == WorkerOutcome.SKIPPED:
                    out.equivalent += 1
                elif result.test_outcome == TestOutcome.KILLED:
                    out.killed += 1
                elif result.test_outcome == TestOutcome.SURVIVED:
                    out.survived += 1
                    m = items[job_id].mutations[0]
                    diff = "\n".join(
                        ln
                        for ln in (result.diff or "").splitlines()
                        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
                    )
                    out.survivors.append(f"{target}:{m.start_pos[0]} {m.operator_name}\n{diff}")
                else:
                    out.incompetent += 1
    out.seconds = time.monotonic() - began
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="modules under src/permanence/ (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="targets run side by side")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant")
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="run the tests on PERMANENCE_TEST_DATABASE_URL (one target at a time)",
    )
    args = parser.parse_args(argv)
    chosen = args.targets or list(TARGETS)
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        parser.error(f"not a target: {', '.join(unknown)} (targets: {', '.join(TARGETS)})")
    if args.postgresql and not os.environ.get(PG_VARIABLES[0]):
        parser.error(f"--postgresql needs {PG_VARIABLES[0]} (see .ci/run)")
    skipped = [t for t in chosen if TARGETS[t].postgresql and not args.postgresql]
    chosen = [t for t in chosen if t not in skipped]
    # Every test run empties and migrates the one database: never two side by side.
    jobs = 1 if args.postgresql else max(1, args.jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(
            pool.map(lambda t: run_target(t, TARGETS[t], args.timeout, args.postgresql), chosen)
        )
    failed = False
    heads = ("killed", "surv.", "equiv.", "scope", "incomp.", "score", "time")
    print(f"{'module':34} " + " ".join(f"{h:>6}" for h in heads))
    for o in outcomes:
        if o.error:
            failed = True
            print(f"{o.target:34} ERROR {o.error}")
            continue
        below = o.score < TARGET_SCORE
        failed |= below
        print(
            f"{o.target:34} {o.killed:6} {o.survived:6} {o.equivalent:6} {o.out_of_scope:6} "
            f"{o.incompetent:7} "
            f"{o.score:6.1%} {o.seconds:5.0f}s{'  < 90 %' if below else ''}"
        )
    for t in skipped:
        print(f"{t:34} skipped: its tests need PostgreSQL (--postgresql)")
    survivors = [s for o in outcomes for s in o.survivors]
    if survivors:
        print("\nsurvivors:")
        for s in survivors:
            print(s, end="\n\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
