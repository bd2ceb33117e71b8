"""Buildbot's test helpers work in the current directory; each test gets one of its own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a fresh directory, as trial would (``_trial_temp``).

    Buildbot's fake master makes ``./basedir`` if it is missing and removes it after the
    test: two xdist workers in one directory raced on it (``FileExistsError``).
    """
    monkeypatch.chdir(tmp_path)
