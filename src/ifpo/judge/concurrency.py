"""Run a function over many inputs with a bounded thread pool and a progress bar.

Threads (not asyncio) because judge calls are blocking HTTP requests made from
synchronous Lightning callbacks and scripts; ``httpx.Client`` is thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from tqdm.auto import tqdm

In = TypeVar("In")
Out = TypeVar("Out")


def map_bounded(
    fn: Callable[[In], Out],
    inputs: Sequence[In],
    *,
    max_workers: int,
    desc: str = "judging",
    show_progress: bool = True,
) -> list[Out]:
    """``[fn(x) for x in inputs]`` with at most ``max_workers`` calls in flight, order kept.

    The first exception cancels every call not yet started and is re-raised.
    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be >= 1, got {max_workers}")
    if not inputs:
        return []
    results: list[Out] = [None] * len(inputs)  # type: ignore[list-item]
    with tqdm(total=len(inputs), desc=desc, disable=not show_progress, leave=False) as bar:
        executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="judge")
        try:
            futures: dict[Future[Out], int] = {executor.submit(fn, x): i for i, x in enumerate(inputs)}
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
            wait(futures)
            for future, index in futures.items():
                results[index] = future.result()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return results
