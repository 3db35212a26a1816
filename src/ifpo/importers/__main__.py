"""``python -m ifpo.importers FORMAT IN OUT [--on-error raise|skip] [--dataset-info dataset_info.json]``."""

from __future__ import annotations

import argparse
import sys

from ifpo.data.errors import DataFormatError
from ifpo.importers.convert import CONVERTERS, convert_file, write_records
from ifpo.importers.llamafactory import convert_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ifpo.importers", description=__doc__)
    parser.add_argument("format", choices=sorted(CONVERTERS))
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise")
    parser.add_argument("--dataset-info", metavar="JSON", default=None,
                        help="llamafactory only: read INPUT as the name of an entry of this LLaMA-Factory "
                             "dataset_info.json (its file_name, formatting, columns and tags)")
    args = parser.parse_args(argv)
    if args.dataset_info and args.format != "llamafactory":
        parser.error("--dataset-info goes with the llamafactory format")
    try:
        if args.dataset_info:
            records, skips = convert_entry(args.dataset_info, args.input, args.on_error)
        else:
            records, skips = convert_file(args.format, args.input, args.on_error)
    except (DataFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_records(records, args.output)
    print(f"{len(records)} records -> {args.output}; {skips.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
