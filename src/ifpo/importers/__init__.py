"""Importers: TRL, LLaMA-Factory ranking (with margin) and IOPO ShareGPT data -> our pair/quad records.

``python -m ifpo.importers FORMAT IN OUT [--on-error skip]``; in Python :func:`convert_file`.
A LLaMA-Factory ``dataset_info.json`` entry: ``python -m ifpo.importers llamafactory NAME OUT
--dataset-info data/dataset_info.json``; in Python :func:`convert_entry`.
"""

from ifpo.importers.convert import (
    CONVERTERS,
    convert_file,
    from_iopo_sharegpt,
    from_llamafactory,
    from_trl,
    write_records,
)
from ifpo.importers.llamafactory import convert_entry, read_entry

__all__ = [
    "CONVERTERS",
    "convert_entry",
    "convert_file",
    "from_iopo_sharegpt",
    "from_llamafactory",
    "from_trl",
    "read_entry",
    "write_records",
]
