"""Password rules (OWASP ASVS 5.0 level 2) and hashing with argon2id."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from permanence.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 128
# m=19 MiB, t=2, p=1: the OWASP minimum for argon2id, about 18 ms here (security.md).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    text = resources.files("permanence.staff").joinpath("common-passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_policy(password: str) -> None:
    """Length and a common-password list; no composition rules (they make passwords worse)."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_LENGTH} characters")
    if password.lower() in _common():
        raise ValidationFailed("password is too common: choose another one")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
