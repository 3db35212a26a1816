"""Importers: TRL, LLaMA-Factory ranking (with margin) and IOPO ShareGPT data -> our pair/quad records.

``python -m ifpo.importers FORMAT IN OUT [--on-error skip]``; in Python :func:`convert_file`.
"""

from ifpo.importers.convert import (
    CONVERTERS,
    convert_file,
    from_iopo_sharegpt,
    from_llamafactory,
    from_trl,
    write_records,
)

__all__ = ["CONVERTERS", "convert_file", "from_iopo_sharegpt", "from_llamafactory", "from_trl", "write_records"]
