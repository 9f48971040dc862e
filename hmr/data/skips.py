"""Counting unreadable images across DataLoader workers (shared memory), for the end-of-epoch log."""
from __future__ import annotations

import logging
import multiprocessing as mp

logger = logging.getLogger(__name__)
_LOG_FIRST = 10


class SkipCounter:
    """A process-shared counter of skipped samples; the first few skips are logged with their reason."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._value = mp.Value("q", 0)

    def record(self, path: str, reason: str) -> None:
        """Count one skipped sample (and log it if it is among the first few)."""
        with self._value.get_lock():
            self._value.value += 1
            count = self._value.value
        if count <= _LOG_FIRST:
            logger.warning("%s: skipping unreadable image %s (%s)%s", self.name, path, reason,
                           "; further skips are only counted" if count == _LOG_FIRST else "")

    @property
    def count(self) -> int:
        """Samples skipped since the last :meth:`reset`."""
        return int(self._value.value)

    def reset(self) -> None:
        """Set the count back to zero (e.g. at the start of an epoch)."""
        with self._value.get_lock():
            self._value.value = 0
