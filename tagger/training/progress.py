"""The one progress-bar factory of long loops (training epochs, annotation)."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(desc: str, unit: str, total: int | None = None, enabled: bool | None = None,
                 leave: bool = False, **options: Any) -> Any:
    """A tqdm bar on stderr: ``enabled`` None shows it only on a terminal, False never, True always.

    A disabled bar is a no-op object with the same methods, so callers need no checks.
    """
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr,
                disable=None if enabled is None else not enabled, **options)
