"""The daemon's state, as /healthz and systemd's STATUS= lines see it."""

from registryd.metrics import Health


def _watched() -> tuple[Health, list[str]]:
    health, seen = Health(), list[str]()
    health.watch(seen.append)
    return health, seen


def test_a_backend_answering_while_starting_waits_for_the_start() -> None:
    """Redis answers a session task before consuming starts: still retrying, then serving."""
    health, seen = _watched()
    health.fail("redis")
    health.recover("redis")
    assert "retrying redis" == health.state()
    health.started("rabbitmq", "redis")
    assert ["retrying redis", "serving"] == seen


def test_a_backend_recovering_while_serving_is_announced() -> None:
    """Redis fails and answers again while events are consumed: retrying, then serving."""
    health, seen = _watched()
    health.started("rabbitmq", "redis")
    health.fail("redis")
    health.recover("redis")
    assert ["serving", "retrying redis", "serving"] == seen
    assert health.ready


def test_started_clears_only_the_backends_that_answered() -> None:
    """Both failed; a start with Redis alone answering leaves rabbitmq being retried."""
    health, _ = _watched()
    health.fail("redis")
    health.fail("rabbitmq")
    health.started("redis")
    assert "retrying rabbitmq" == health.state()
