"""``python -m ifpo.importers FORMAT IN OUT [--on-error raise|skip] [--dataset-info dataset_info.json]``."""

from __future__ import annotations

import argparse
import sys

from ifpo.importers.convert import CONVERTERS, convert_file, write_records
from ifpo.importers.llamafactory import convert_entry
from ifpo.io.errors import DataFormatError


def build_parser() -> argparse.ArgumentParser:
    """Every argument with a help line; --help shows each default (ArgumentDefaultsHelpFormatter)."""
    parser = argparse.ArgumentParser(
        prog="python -m ifpo.importers", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Convert existing preference data into ifpo's training records (pairs or IOPO quads).",
        epilog="Then: python train.py data=files data.train_files=[OUT]",
    )
    parser.add_argument("format", choices=sorted(CONVERTERS),
                        help="layout of IN: trl (prompt/chosen/rejected), llamafactory (a dataset_info "
                             "entry's layout), iopo_sharegpt (the IOPO release's ShareGPT quads)")
    parser.add_argument("input", help="IN: a JSON or JSONL file (with --dataset-info: the entry name)")
    parser.add_argument("output", help="OUT: the JSONL file to write")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="raise: stop at the first bad row (file, line, field); skip: count and go on")
    parser.add_argument("--dataset-info", metavar="JSON", default=None,
                        help="llamafactory only: read IN as the name of an entry of this LLaMA-Factory "
                             "dataset_info.json (its file_name, formatting, columns and tags)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
