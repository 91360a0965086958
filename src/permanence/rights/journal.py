"""The erasure journal's replay steps (ADR 0008, ADR 0038): what a restore carries out again
for each kind of entry, a subject's erasure (``erasure.replay_erasure``) and an account's
off-boarding (``contracts.offboarding.replay_offboarding``).

The journal and its replay (``backup.journal``, ``backup.replay``) sit below the two features
that write the journal and import neither: ``permanence restore`` and ``permanence rights
journal-replay`` hand them ``JOURNAL_STEPS``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from permanence.backup.journal import JournalEntry
from permanence.backup.replay import ReplaySteps
from permanence.contracts.offboarding import replay_offboarding
from permanence.crypto.keyring import Keyring
from permanence.rights.erasure import replay_erasure


def replay_subject(
    session: Session, keyring: Keyring, entry: JournalEntry
) -> tuple[bool, Sequence[tuple[str, str]]]:
    """A journalled erasure carried out again (``replay_erasure``): whether it changed
    anything, and the files of the deleted rows, for the replay to delete after the commit."""
    erased, applied = replay_erasure(session, keyring, entry)
    return applied, erased.files


JOURNAL_STEPS = ReplaySteps(subject=replay_subject, account=replay_offboarding)
