"""Command-line conventions shared by every entry point: bad input prints one line naming the
parameter and exits with status 2, never a traceback."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(name: str):
    """An argparse type that accepts positive integers and names ``name`` when it refuses."""

    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected an integer, got {s!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{name}: must be positive, got {v}")
        return v

    return conv
