"""Prompts as WAV files, made at run time from tones: no recordings to ship or license.

* busy: the busy tone (480 + 620 Hz, half a second on, half off), as a phone plays it;
* unavailable: the special information tones (913.8, 1370.6, 1776.7 Hz, ITU-T E.180)
  that precede "the number you have called is not available" announcements.

8 kHz 16-bit mono, what the telephone codecs carry without resampling.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

__all__ = ["RATE", "busy", "unavailable", "write_prompts"]

RATE = 8000
_AMPLITUDE = 12000


def _tone(frequencies: tuple[float, ...], seconds: float) -> list[int]:
    count = int(RATE * seconds)
    scale = _AMPLITUDE / len(frequencies)
    return [int(scale * sum(math.sin(2 * math.pi * f * i / RATE) for f in frequencies))
            for i in range(count)]


def _silence(seconds: float) -> list[int]:
    return [0] * int(RATE * seconds)


def busy(cycles: int = 4) -> list[int]:
    samples: list[int] = []
    for _ in range(cycles):
        samples += _tone((480.0, 620.0), 0.5) + _silence(0.5)
    return samples


def unavailable(repeats: int = 2) -> list[int]:
    samples: list[int] = []
    for _ in range(repeats):
        for frequency, seconds in ((913.8, 0.274), (1370.6, 0.274), (1776.7, 0.380)):
            samples += _tone((frequency,), seconds)
        samples += _silence(1.0)
    return samples


def _write(path: Path, samples: list[int]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def write_prompts(directory: Path) -> dict[str, Path]:
    """Write ``busy.wav`` and ``unavailable.wav`` into *directory*; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"busy": directory / "busy.wav", "unavailable": directory / "unavailable.wav"}
    _write(paths["busy"], busy())
    _write(paths["unavailable"], unavailable())
    return paths
