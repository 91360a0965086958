"""Line-oriented scanning, for the ``permanence pii scan`` command."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import IO

from permanence.pii.detector import detect, replace_entities

__all__ = ["scan_lines"]


def scan_lines(
    stream_in: IO[str],
    stream_out: IO[str],
    mask: bool,
    types: Collection[str] | None = None,
) -> int:
    """Read one document per line and write JSON lines; return the entity count.

    Without ``mask``: one object per entity, ``{"line", "type", "start", "end",
    "text"}`` (line numbers are 1-based, offsets are relative to the line without
    its newline). With ``mask``: each input line, masked, as plain text.
    """
    count = 0
    for number, raw in enumerate(stream_in, start=1):
        line = raw[:-1] if raw.endswith("\n") else raw
        if line.endswith("\r"):
            line = line[:-1]
        entities = detect(line, types)
        count += len(entities)
        if mask:
            stream_out.write(replace_entities(line, entities) + "\n")
            continue
        for entity in entities:
            record: dict[str, str | int] = {"line": number, **entity.to_dict()}
            stream_out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return count
