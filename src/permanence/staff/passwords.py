"""Password rules (OWASP ASVS 5.0 level 2, V6.2) and hashing with argon2id.

A candidate is refused when it is shorter than 8 or longer than 128 characters (6.2.1, 6.2.9),
is on a list of common passwords (6.2.4: zxcvbn's lists of leaked passwords plus our own
French one), contains the person's own e-mail or name or the product's name (6.2.11), or when
the zxcvbn estimator guesses it in fewer than 10^10 tries (score below 3: repeats such as
``aaaaaaaa``, sequences, keyboard walks, dates). No composition rules (6.2.5): they make
passwords worse. Each refusal carries a ``reason`` the pages turn into a French sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from permanence.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 128
MIN_SCORE = 3  # zxcvbn: "safely unguessable", more than 10^10 guesses
_PRODUCT_WORDS = ("permanence",)
# m=19 MiB, t=2, p=1: the OWASP minimum for argon2id, about 18 ms here (security.md).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# zxcvbn's pattern of the weakest part of a guessable password -> our reason.
_PATTERN_REASONS = {
    "repeat": "repeated",
    "sequence": "sequence",
    "spatial": "keyboard",
    "date": "date",
    "regex": "date",  # recent years
}
REASONS = {
    "too_short": f"password must be at least {MIN_LENGTH} characters",
    "too_long": f"password must be at most {MAX_LENGTH} characters",
    "common": "password is too common: choose another one",
    "personal": "password contains your e-mail address or name",
    "product": "password contains the name of this service",
    "repeated": "password is too easy to guess: it repeats the same characters",
    "sequence": "password is too easy to guess: it follows a sequence such as abcd or 1234",
    "keyboard": "password is too easy to guess: it follows a row of the keyboard",
    "date": "password is too easy to guess: it is mostly a date or a year",
    "guessable": "password is too easy to guess: make it longer, for example a few words",
}


class WeakPassword(ValidationFailed):
    """A candidate password refused by the policy; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str) -> None:
        super().__init__(REASONS[reason])
        self.reason = reason


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    text = resources.files("permanence.staff").joinpath("common-passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def _personal_words(user_inputs: Iterable[str]) -> list[str]:
    words: list[str] = []
    for value in user_inputs:
        value = value.strip().lower()
        if not value:
            continue
        words.append(value)
        local = value.split("@")[0]
        words.extend(w for w in [local, *local.replace("-", ".").replace("_", ".").split(".")])
        words.extend(value.split())
    return [w for w in dict.fromkeys(words) if len(w) >= 4]


def check_policy(password: str, user_inputs: Iterable[str] = ()) -> None:
    """Raise WeakPassword unless ``password`` may be set. ``user_inputs``: the person's
    e-mail and name, refused inside the password."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]

    if len(password) < MIN_LENGTH:
        raise WeakPassword("too_short")
    if len(password) > MAX_LENGTH:
        raise WeakPassword("too_long")
    lowered = password.lower()
    if lowered in _common():
        raise WeakPassword("common")
    personal = _personal_words(user_inputs)
    if lowered in personal:
        raise WeakPassword("personal")
    # Otherwise the person's words count as zxcvbn dictionary words: "camille.martin99" is
    # weak, a long phrase that happens to contain "admin" is not.
    result = zxcvbn(password, user_inputs=[*personal, *_PRODUCT_WORDS])
    if result["score"] >= MIN_SCORE:
        return
    sequence = result["sequence"]
    # The longest part of a guessable password says why.
    weakest = max(sequence, key=lambda m: len(m["token"]))
    reason = _PATTERN_REASONS.get(weakest["pattern"])
    if weakest["pattern"] == "dictionary":
        if weakest.get("matched_word") in _PRODUCT_WORDS:
            reason = "product"
        elif weakest.get("dictionary_name") == "user_inputs":
            reason = "personal"
        else:
            reason = "common"
    raise WeakPassword(reason or "guessable")


def hash_password(password: str, user_inputs: Iterable[str] = ()) -> str:
    check_policy(password, user_inputs)
    return _hasher.hash(password)


def hash_secret(secret: str) -> str:
    """argon2id of a generated secret (recovery codes): no policy to check."""
    return _hasher.hash(secret)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
