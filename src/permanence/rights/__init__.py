"""Data-subject rights (Art. 12-22): intake, verification, the Art. 12(3) clock, lookup of
every record of a subject, access, portability, rectification, restriction, objection,
erasure with a certificate, refusal with reasons; and the OpenDSR API (docs/rights.md)."""
