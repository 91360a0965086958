"""What a mandate that cannot be accepted raises (docs/mandates.md).

`MandateInvalid` lists *every* problem found, each naming its location; the models' own
rules report theirs through `_reject`, which `parsing` expands with locations.
"""

from collections.abc import Sequence

from pydantic_core import PydanticCustomError


class MandateInvalid(ValueError):
    """A mandate document that cannot be accepted; `.problems` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"the mandate has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"- {p}" for p in self.problems)])


class PurposeNotInMandate(LookupError):
    """The mandate declares no purpose with this code."""

    def __init__(self, code: str, account: str | None = None) -> None:
        self.code = code
        self.account = account
        where = f" of account '{account}'" if account else ""
        super().__init__(f"purpose '{code}' is not declared by the mandate{where}")

    def __str__(self) -> str:
        return str(self.args[0])


class FieldNotInPurpose(LookupError):
    """The purpose does not declare (or reference) a field with this name."""

    def __init__(self, name: str, purpose_code: str) -> None:
        self.name = name
        self.purpose_code = purpose_code
        super().__init__(f"field '{name}' is not declared by purpose '{purpose_code}'")

    def __str__(self) -> str:
        return str(self.args[0])


class MandateUnversioned(ValueError):
    """The mandate has no version yet: versions are assigned when it is imported."""


def _reject(problems: list[str]) -> None:
    """Raise all problems of one object at once; `_translate` expands them with locations."""
    if problems:
        raise PydanticCustomError(
            "mandate_rules", "{summary}", {"summary": "; ".join(problems), "problems": problems}
        )
