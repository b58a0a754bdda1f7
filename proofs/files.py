"""Writing outputs whole or not at all (the helpers live in :mod:`models.files`, torch-free)."""

from models.files import check_replaceable, replace_dir, save_figure, write_atomic, write_text

__all__ = ["check_replaceable", "replace_dir", "save_figure", "write_atomic", "write_text"]
