"""``serve`` with a refused RabbitMQ login says so once, names RabbitMQ, and keeps retrying."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.harness import AMQP_URL, served, wait_for


def _starts(records: list[dict[str, Any]]) -> int:
    return sum(r.get("event") == "session ended; starting a new one" for r in records)


async def test_a_refused_login_is_logged_once_as_such_with_a_hint(
    tmp_path: Path, prefix: str
) -> None:
    """Three failed sessions, one error line: RabbitMQ, access refused, no retry will help."""
    wrong = AMQP_URL.replace("guest:guest@", "guest:not-the-password@")
    with served(tmp_path, prefix, REGISTRYD_AMQP_URL=wrong) as serve:
        await wait_for(lambda: _starts(serve.records()) >= 3, 60)
        await serve.stopped()
        records = serve.records()
    errors = [r for r in records if r.get("level", r.get("log_level")) == "error"]
    assert [("RabbitMQ", "access refused")] == [(r["backend"], r["refusal"]) for r in errors]
    assert "retry" in errors[0]["hint"]
    assert "not-the-password" not in serve.log()
