"""Detection and masking of French personal data in free text.

See ``docs/pii.md``. Public API: :class:`Entity`, :func:`detect`, :func:`mask`,
:class:`RedactingFilter`, :func:`undeclared`, :func:`scan_lines`.
"""

from permanence.pii.detector import (
    ALL_TYPES,
    STRUCTURED_TYPES,
    Entity,
    detect,
    mask,
    replace_entities,
)
from permanence.pii.redaction import RedactingFilter, undeclared
from permanence.pii.scan import scan_lines

__all__ = [
    "ALL_TYPES",
    "STRUCTURED_TYPES",
    "Entity",
    "RedactingFilter",
    "detect",
    "mask",
    "replace_entities",
    "scan_lines",
    "undeclared",
]
