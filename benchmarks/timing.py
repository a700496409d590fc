"""Timing shared by the benchmarks: the command line and interleaved rounds."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable


def parse_rounds(description: str | None, quick: tuple[int, int], full: tuple[int, int]) -> tuple[int, int]:
    """``(warm-up rounds, timed rounds)`` from the command line (``--quick`` for fewer)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{quick[0]} warm-up and {quick[1]} timed rounds instead of {full[0]} and {full[1]}",
    )
    return quick if parser.parse_args().quick else full


def interleaved_medians(
    variants: dict[str, Callable[[], None]], warmup: int, rounds: int
) -> dict[str, float]:
    """Median seconds of each variant, timed once per round with rounds interleaved, so that a machine
    that gets busier during the run slows every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(warmup + rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def load_average() -> float:
    """The 1-minute load average (NaN where the system has none): other processes lower every figure."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
