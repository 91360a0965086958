"""``python -m permanence.pii [--mask] [--types T,...] [FILE]``: scan or mask text lines."""

from __future__ import annotations

import argparse
import sys

from permanence.pii.detector import ALL_TYPES
from permanence.pii.scan import scan_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m permanence.pii",
        description="Detect French personal data, one document per input line (JSON lines out).",
    )
    parser.add_argument("file", nargs="?", help="input file (default: standard input)")
    parser.add_argument("--mask", action="store_true", help="write masked lines instead")
    parser.add_argument("--types", help=f"comma-separated subset of {','.join(ALL_TYPES)}")
    args = parser.parse_args(argv)
    types = [t.strip() for t in args.types.split(",")] if args.types else None
    if types is not None and (bad := set(types) - set(ALL_TYPES)):
        parser.error(f"unknown type(s): {', '.join(sorted(bad))}")
    if args.file:
        with open(args.file, encoding="utf-8") as stream:
            scan_lines(stream, sys.stdout, args.mask, types)
    else:
        scan_lines(sys.stdin, sys.stdout, args.mask, types)
    return 0


if __name__ == "__main__":
    sys.exit(main())
