"""Progress bars that stay readable in logs.

On a terminal this is tqdm. Off a terminal (Snakemake logs, CI) tqdm's carriage returns make
unreadable logs, so it prints one plain line every ``log_every_s`` seconds instead.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None,
             log_every_s: float = 30.0, stream=None) -> Iterator[T]:
    """Iterate with a tqdm bar on a TTY, else with periodic ``desc: i/total (rate/s)`` log lines."""
    stream = stream or sys.stderr
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if getattr(stream, "isatty", lambda: False)():
        yield from tqdm(iterable, desc=desc, total=total, file=stream)
        return
    start = last = time.monotonic()
    i = 0
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= log_every_s:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc}: {i}{of} ({i / (now - start):.2f} it/s, {now - start:.0f}s)", file=stream, flush=True)
    elapsed = time.monotonic() - start
    print(f"{desc}: done {i} in {elapsed:.1f}s", file=stream, flush=True)
