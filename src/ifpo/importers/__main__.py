"""``python -m ifpo.importers FORMAT IN OUT [--on-error raise|skip]``."""

from __future__ import annotations

import argparse
import sys

from ifpo.data.errors import DataFormatError
from ifpo.importers.convert import CONVERTERS, convert_file, write_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ifpo.importers", description=__doc__)
    parser.add_argument("format", choices=sorted(CONVERTERS))
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    args = parser.parse_args(argv)
    try:
        records, skips = convert_file(args.format, args.input, args.on_error)
    except (DataFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_records(records, args.output)
    print(f"{len(records)} records -> {args.output}; {skips.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
