"""``/metrics`` as an operator scrapes it: during a burst, and what the alerts are built on."""

from __future__ import annotations

import asyncio
import platform
import uuid

import pytest
from aio_pika.abc import AbstractConnection
from prometheus_client.parser import text_string_to_metric_families

from registryd import __version__
from registryd.config import Settings
from registryd.metrics import RelayLag
from registryd.protocol import VERSION
from tests.harness import (
    PrivateRedis,
    RunningDaemon,
    Wire,
    daemon_settings,
    free_port,
    http_get,
    start_daemon,
    start_daemon_unready,
    wait_for,
)

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(prefix: str) -> Settings:
    """The daemon's settings, with /metrics on a free port."""
    return daemon_settings(prefix).model_copy(update={"metrics_port": free_port()})


class Scraper:
    """GETs /metrics as Prometheus would and parses every scrape."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def text(self) -> str:
        """One scrape's text (it must answer 200)."""
        status, _, body = await asyncio.to_thread(http_get, self.port, "/metrics")
        assert 200 == status
        return body.decode()

    async def samples(self) -> Samples:
        """One scrape, parsed: (name, labels) to value."""
        return parse(await self.text())

    async def value(self, name: str, **labels: str) -> float | None:
        """One sample of a fresh scrape (None: absent)."""
        return (await self.samples()).get((name, frozenset(labels.items())))

    async def reaches(self, expected: float, name: str, **labels: str) -> None:
        """Scrape until the sample has the expected value (gauges refresh every second)."""

        async def there() -> bool:
            return expected == await self.value(name, **labels)

        await wait_for(there, 10)


def parse(text: str) -> Samples:
    """Every sample of an exposition text (which must parse)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def scraper(settings: Settings) -> Scraper:
    """A scraper of the test's daemon."""
    return Scraper(settings.metrics_port)


@pytest.fixture
async def bursting(daemon: RunningDaemon, rpc: Wire) -> Wire:
    """A served registry with one master; the wire leaves the dead queue alone."""
    await rpc.ok("masterHeartbeat", {"masterid": 1, "name": "m1"})
    return rpc


async def _burst(wire: Wire, events: int, rpcs: int) -> None:
    """``events`` heartbeats (10 masters) and ``rpcs`` pings and getWorkers, all at once."""
    heartbeats = [
        wire.event(
            {"type": "master.heartbeat", "masterid": 100 + i % 10, "name": f"m{i % 10}"},
            message_id=uuid.uuid4().hex,
        )
        for i in range(events)
    ]
    calls = [wire.ok("ping" if i % 2 else "getWorkers") for i in range(rpcs)]
    await asyncio.gather(*heartbeats, *calls)


async def test_scrapes_during_a_burst_parse_and_their_counters_never_fall(
    bursting: Wire, scraper: Scraper
) -> None:
    """Scraped over and over while 300 events and 200 RPCs arrive: each scrape parses."""
    scrapes: list[Samples] = []
    done = asyncio.Event()

    async def scrape_until_done() -> None:
        while not done.is_set():
            scrapes.append(await scraper.samples())

    scraping = asyncio.create_task(scrape_until_done())
    await _burst(bursting, 300, 200)
    await bursting.settled()
    done.set()
    await scraping
    scrapes.append(await scraper.samples())
    assert len(scrapes) >= 3
    applied = ("registryd_events_applied_total", frozenset({("type", "master.heartbeat")}))
    seen = [scrape.get(applied, 0.0) for scrape in scrapes]
    assert sorted(seen) == seen
    assert 300 == seen[-1]


async def test_rpc_latency_and_results_are_counted_by_method(
    bursting: Wire, scraper: Scraper
) -> None:
    """registryd_rpc_seconds has a histogram per method; requests count by method and code."""
    await _burst(bursting, 0, 40)
    assert "unknown_method" == await bursting.code("noSuchMethod")
    samples = await scraper.samples()
    for method in ("ping", "getWorkers"):
        assert 20 == samples[("registryd_rpc_seconds_count", frozenset({("method", method)}))]
        requests = frozenset({("method", method), ("code", "ok")})
        assert 20 == samples[("registryd_rpc_requests_total", requests)]
    bucket = frozenset({("method", "ping"), ("le", "+Inf")})
    assert 20 == samples[("registryd_rpc_seconds_bucket", bucket)]
    refused = frozenset({("method", "?"), ("code", "unknown_method")})
    assert 1 == samples[("registryd_rpc_requests_total", refused)]


async def test_refused_events_count_by_type_and_code_and_dead_letters_by_code(
    bursting: Wire, scraper: Scraper
) -> None:
    """Four kinds of bad event: refused by (type, code), dead letters by code, queue depth."""
    await bursting.event(b"not json")
    await bursting.event({"type": "worker.exploded"})
    await bursting.event({"type": "worker.connected", "masterid": 1})  # no workerid
    await bursting.event(
        {"type": "worker.connected", "workerid": 999_999, "masterid": 1, "workerinfo": {}}
    )
    await bursting.settled()
    samples = await scraper.samples()
    refused = {
        (dict(labels)["type"], dict(labels)["code"]): value
        for (name, labels), value in samples.items()
        if name == "registryd_events_refused_total"
    }
    assert {
        ("unknown", "bad_request"): 1,
        ("unknown", "unknown_type"): 1,
        ("worker.connected", "invalid_params"): 1,
        ("worker.connected", "not_found"): 1,
    } == refused
    for code in ("bad_request", "unknown_type", "invalid_params", "not_found"):
        assert 1 == samples[("registryd_dead_letters_total", frozenset({("code", code)}))]
    await scraper.reaches(4, "registryd_queue_messages", queue="dead")


async def test_committed_and_published_revisions_meet_with_no_lag(
    bursting: Wire, scraper: Scraper
) -> None:
    """After a burst, committed = published = ping's revision, and the lag is 0 s."""
    await _burst(bursting, 50, 0)
    await asyncio.gather(*(bursting.ok("findWorkerId", {"name": f"w{i}"}) for i in range(30)))
    await bursting.settled()
    revision = await bursting.revision()
    await scraper.reaches(revision, "registryd_committed_revision")
    samples = await scraper.samples()
    assert revision == samples[("registryd_relay_revision", frozenset())]
    assert 1 == samples[("registryd_relay_active", frozenset())]
    assert 0 == samples[("registryd_relay_lag_seconds", frozenset())]


async def test_a_second_daemon_of_the_prefix_reports_no_relay_lag_of_its_own(
    bursting: Wire, settings: Settings, scraper: Scraper
) -> None:
    """Only the relay holder measures lag; the other shows the committed revision, inactive."""
    second_settings = settings.model_copy(update={"metrics_port": free_port()})
    second = await start_daemon(second_settings)
    try:
        await asyncio.gather(*(bursting.ok("findWorkerId", {"name": f"w{i}"}) for i in range(10)))
        await bursting.settled()
        other = Scraper(second_settings.metrics_port)
        await other.reaches(await bursting.revision(), "registryd_committed_revision")
        await other.reaches(0, "registryd_relay_active")
        assert 0 == await other.value("registryd_relay_lag_seconds")
        assert 1 == await scraper.value("registryd_relay_active")
    finally:
        await second.stop()


async def test_the_events_queue_depth_shows_a_backlog_while_redis_is_down(
    settings: Settings, private_redis: PrivateRedis, amqp: AbstractConnection, prefix: str
) -> None:
    """Redis killed, 10 events sent: the events queue's depth rises, then drains to 0."""
    await private_redis.start()
    update = {"redis_url": private_redis.url, "events_batch": 1}  # prefetch 2: the rest waits
    running = await start_daemon(settings.model_copy(update=update))
    wire = await Wire.open(amqp, prefix, notes=False, redis_url=private_redis.url)
    scraper = Scraper(settings.metrics_port)
    try:
        await wire.attach(dead=False)
        private_redis.kill()
        for masterid in range(10):
            await wire.event({"type": "master.heartbeat", "masterid": masterid})

        async def backlog() -> bool:
            return (await scraper.value("registryd_queue_messages", queue="events") or 0) >= 5

        await wait_for(backlog, 10)
        assert 0 == await scraper.value("registryd_ready")
        await private_redis.start()
        await scraper.reaches(0, "registryd_queue_messages", queue="events")
        await wait_for(lambda: running.daemon.health.ready, 20)
    finally:
        await running.stop()
        await wire.close()


async def test_build_info_default_collectors_and_no_created_series(
    daemon: RunningDaemon, scraper: Scraper
) -> None:
    """Versions in registryd_build_info; process_* and python_* series; no *_created."""
    text = await scraper.text()
    samples = parse(text)
    build = frozenset(
        {("version", __version__), ("protocol", VERSION), ("python", platform.python_version())}
    )
    assert 1 == samples[("registryd_build_info", build)]
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert "python_gc_collections_total" in names
    assert [] == [line for line in text.splitlines() if "_created" in line]


async def test_registryd_ready_follows_healthz(
    settings: Settings, amqp: AbstractConnection
) -> None:
    """registryd_ready: 0 while Redis is unreachable at start (the not-ready alert), else 1."""
    dead = PrivateRedis()  # nothing listens on its port until start()
    running = await start_daemon_unready(settings.model_copy(update={"redis_url": dead.url}))
    scraper = Scraper(settings.metrics_port)
    try:
        assert 0 == await scraper.value("registryd_ready")
        await dead.start()
        await wait_for(lambda: running.daemon.health.ready, 20)
        assert 1 == await scraper.value("registryd_ready")
    finally:
        await running.stop()
        dead.kill()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_relay_lag_is_the_age_of_the_oldest_unpublished_commit() -> None:
    """Commits seen at t=0 and t=5, published one by one: the lag follows the oldest left."""
    clock = _Clock()
    lag = RelayLag(clock)
    lag.active = True
    lag.commit_seen(0, "e1")
    lag.commit_seen(3, "e1")
    clock.now += 5
    lag.commit_seen(7, "e1")
    clock.now += 2
    assert 7.0 == lag.seconds()
    lag.publish_seen(3)
    assert 2.0 == lag.seconds()
    lag.publish_seen(7)
    assert (0.0, 7, 7) == (lag.seconds(), lag.committed, lag.published)


def test_relay_lag_starts_again_after_a_reset_and_is_zero_when_not_relaying() -> None:
    """A new epoch forgets the old revisions; a process not holding the role reports 0."""
    clock = _Clock()
    lag = RelayLag(clock)
    lag.active = True
    lag.publish_seen(500)
    lag.commit_seen(500, "e1")  # the first reading: caught up
    assert 0.0 == lag.seconds()
    lag.commit_seen(2, "e2")  # reset: revisions start again
    assert 2 == lag.committed
    lag.commit_seen(4, "e2")
    clock.now += 3
    assert 3.0 == lag.seconds()
    lag.active = False
    assert 0.0 == lag.seconds()


def test_a_publish_ahead_of_the_last_reading_counts_as_committed() -> None:
    """Published revisions are committed ones: committed never reads below published."""
    lag = RelayLag(_Clock())
    lag.commit_seen(5, "e1")
    lag.publish_seen(9)
    assert (9, 9) == (lag.committed, lag.published)
