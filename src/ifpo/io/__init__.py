"""The lowest layer: file writing every other package shares (atomic writes)."""

from ifpo.io.atomic import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text"]
