"""The password policy (OWASP ASVS 5.0 V6.2): length, common passwords, the person's own
name, and zxcvbn's estimate; each refusal says why."""

from __future__ import annotations

import pytest

from permanence.staff.passwords import REASONS, WeakPassword, check_policy, hash_password

ME = ("camille.martin@exemple.fr", "Camille Martin")


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("court", "too_short"),
        ("x" * 129, "too_long"),
        ("aaaaaaaa", "repeated"),
        ("12345678", "common"),
        ("azertyuiop", "common"),
        ("motdepasse", "common"),
        ("abcdefgh123", "sequence"),
        ("zxcvbnm,./", "keyboard"),
        ("01/02/2020", "date"),
        ("camille.martin99", "personal"),
        ("martincamille", "personal"),
        ("Permanence2026", "product"),
    ],
)
def test_weak_passwords_are_refused_with_their_reason(candidate: str, reason: str) -> None:
    with pytest.raises(WeakPassword) as refused:
        check_policy(candidate, ME)
    assert refused.value.reason == reason
    assert refused.value.message == REASONS[reason]
    with pytest.raises(WeakPassword):
        hash_password(candidate, ME)  # nothing is hashed for a weak password


@pytest.mark.parametrize(
    "candidate",
    [
        "un mot de passe de test",
        "correct horse battery staple",
        "Tr0ub4dor&3",
        "Thé à la menthe, sans sucre",
    ],
)
def test_strong_passwords_pass(candidate: str) -> None:
    check_policy(candidate, ME)
    assert hash_password(candidate, ME).startswith("$argon2id$")


def test_a_phrase_that_contains_part_of_the_address_is_not_refused_for_it() -> None:
    """The person's words weigh in zxcvbn's estimate; a substring alone does not refuse."""
    admin = ("admin@permanence.example", "Administrateur")
    check_policy("Mot de passe de l'administrateur 2026", admin)
    with pytest.raises(WeakPassword) as refused:
        check_policy("admin@permanence.example", admin)
    assert refused.value.reason == "personal"


def test_the_timing_equaliser_costs_what_a_password_costs() -> None:
    """The dummy hash an unknown e-mail is checked against is written out (not hashed at
    start): it must carry the hasher's parameters, or an unknown address would answer faster
    (or slower) than a wrong password."""
    from permanence.staff.auth import _DUMMY_HASH
    from permanence.staff.passwords import needs_rehash, verify_password

    assert not needs_rehash(_DUMMY_HASH)
    assert verify_password(_DUMMY_HASH, "timing-equaliser-not-a-password")
    assert not verify_password(_DUMMY_HASH, "another")
