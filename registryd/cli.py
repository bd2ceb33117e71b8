"""The ``registryd`` command: ``serve``, ``check`` and the operator commands.

The operator commands (``workers``, ``worker``, ``masters``, ``watch``, ``dead-letters``,
``demo``) are thin: their work is in :mod:`registryd.operator`. They talk to a running
daemon through RabbitMQ only; when none answers they print one line on stderr and exit 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog

from registryd import __version__
from registryd.config import Settings, load_settings
from registryd.errors import ConfigError

if TYPE_CHECKING:
    from registryd.client import RegistryClient
    from registryd.daemon import Daemon
    from registryd.operator import DeadLetterAction

__all__ = ["main"]

log = structlog.get_logger(__name__)


class Context:
    """What every subcommand gets: the configuration file's path, read on demand."""

    def __init__(self, config: Path | None) -> None:
        self.config = config

    def settings(self) -> Settings:
        """The settings (file under environment), or a one-line error and exit code 1."""
        try:
            return load_settings(self.config)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="registryd")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="REGISTRYD_CONFIG",
    help="TOML configuration file; REGISTRYD_* variables override it.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """registryd: the worker registry of a multi-master CI system."""
    ctx.obj = Context(config)


@main.command()
@pass_context
def serve(ctx: Context) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    from registryd.daemon import Daemon  # noqa: PLC0415 - keeps the light commands fast
    from registryd.logs import configure_logging  # noqa: PLC0415

    settings = ctx.settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        asyncio.run(_serve(Daemon(settings)))
    except ConfigError as exc:
        log.error("cannot start", error=str(exc))  # noqa: TRY400 - the message says it all
        sys.exit(1)


#: Seconds past the grace period after which a stuck shutdown is cut short.
_WATCHDOG_MARGIN = 3.0


def _exit_now(why: str, code: int, **context: object) -> None:
    """Leave the process at once, after saying why (a last resort, nothing is flushed)."""
    log.error(why, exit_code=code, **context)
    sys.stderr.flush()
    os._exit(code)


async def _serve(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:  # a second signal means "now", as with uvicorn
            _exit_now("second signal: exiting at once", 1, signal=signal.Signals(signum).name)
        log.info("stopping", signal=signal.Signals(signum).name, grace=daemon.settings.grace)
        daemon.request_stop()
        # Everything in flight is done or back in its queue by then; a shutdown that is
        # still stuck (a lost cancellation, a close that never returns) must not block.
        loop.call_later(
            daemon.settings.grace + _WATCHDOG_MARGIN,
            _exit_now,
            "shutdown overran the grace period; exiting",
            0,
        )

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await daemon.serve()


@main.command()
@pass_context
def check(ctx: Context) -> None:
    """Exit 0 when RabbitMQ and Redis answer, 1 otherwise (one line on stdout)."""
    from registryd.probe import probe  # noqa: PLC0415

    failed = asyncio.run(probe(ctx.settings()))
    if failed:
        click.echo("failed: " + "; ".join(f"{name} ({why})" for name, why in failed))
        sys.exit(1)
    click.echo("ok: rabbitmq and redis answer")


# -- operator commands ---------------------------------------------------------------------

#: An operator command's work, given a client whose daemon answered.
Action = Callable[["RegistryClient"], Coroutine[Any, Any, None]]

json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


def _operate(ctx: Context, action: Action) -> None:
    """Connect, check that a daemon answers, run ``action``; errors are one line and exit 1."""
    from registryd.errors import RegistryError  # noqa: PLC0415
    from registryd.logs import configure_logging, mask  # noqa: PLC0415
    from registryd.operator import connected  # noqa: PLC0415

    settings = ctx.settings()
    # Library warnings go to stderr; stdout is the command's output (JSON for scripts).
    configure_logging(settings.log_format, "warning")
    # The broker libraries log what they then raise; the one-line error says it already.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    async def run() -> None:
        async with connected(settings) as client:
            await action(client)

    try:
        asyncio.run(run())
    except RegistryError as exc:
        click.echo(f"registryd: {mask(exc.message)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _err(line: str) -> None:
    click.echo(line, err=True)


@main.command()
@click.option("--master", type=click.IntRange(min=1), help="Configured on this master id.")
@click.option("--builder", type=click.IntRange(min=1), help="Configured for this builder id.")
@click.option("--paused/--no-paused", default=None, help="Only paused (or unpaused) workers.")
@click.option("--graceful/--no-graceful", default=None, help="Only workers (not) stopping.")
@json_option
@pass_context
def workers(
    ctx: Context,
    *,
    master: int | None,
    builder: int | None,
    paused: bool | None,
    graceful: bool | None,
    as_json: bool,
) -> None:
    """List workers (getWorkers), as a table or, with --json, the RPC's JSON list."""
    from registryd.operator import show_workers  # noqa: PLC0415

    filters = {"masterid": master, "builderid": builder, "paused": paused, "graceful": graceful}
    _operate(ctx, lambda client: show_workers(client, filters, as_json=as_json, echo=click.echo))


@main.command()
@click.argument("workerid", metavar="[ID]", required=False, type=click.IntRange(min=1))
@click.option("--name", help="The worker's name instead of its id.")
@json_option
@pass_context
def worker(ctx: Context, workerid: int | None, name: str | None, as_json: bool) -> None:
    """Show one worker by ID or --name; exit 1 when there is none."""
    from registryd.operator import show_worker  # noqa: PLC0415

    if (workerid is None) == (name is None):
        raise click.UsageError("give a worker ID or --name NAME (one of them)")
    _operate(
        ctx, lambda client: show_worker(client, workerid, name, as_json=as_json, echo=click.echo)
    )


@main.command()
@json_option
@pass_context
def masters(ctx: Context, as_json: bool) -> None:
    """List masters (getMasters): id, name, active, last_seen."""
    from registryd.operator import show_masters  # noqa: PLC0415

    _operate(ctx, lambda client: show_masters(client, as_json=as_json, echo=click.echo))


@main.command()
@click.option(
    "--since", type=click.IntRange(min=0), help="First print the changes after this revision."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def watch(ctx: Context, since: int | None, as_json: bool) -> None:
    """Print each change notification as it comes, until Ctrl-C or SIGTERM."""
    from registryd.operator import watch as follow  # noqa: PLC0415

    _operate(ctx, lambda client: follow(client, since, as_json=as_json, echo=click.echo, note=_err))


@main.command("dead-letters")
@click.option(
    "--json", "as_json", is_flag=True, help="The messages as one JSON list; the summary on stderr."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Take at most N."
)
@click.option("--replay", is_flag=True, help="Publish them to <prefix>.events again.")
@click.option("--drop", is_flag=True, help="Delete them.")
@pass_context
def dead_letters(ctx: Context, as_json: bool, limit: int, replay: bool, drop: bool) -> None:
    """List the rejected events of <prefix>.dead (left there), or replay or drop them."""
    from registryd.operator import dead_letters as handle  # noqa: PLC0415

    if replay and drop:
        raise click.UsageError("--replay and --drop exclude each other")
    action: DeadLetterAction = "replay" if replay else "drop" if drop else "list"
    _operate(
        ctx,
        lambda client: handle(client, action, limit, as_json=as_json, echo=click.echo, note=_err),
    )


@main.command()
@click.option(
    "--masters",
    "count",
    type=click.IntRange(1, 9),
    default=2,
    show_default=True,
    help="Masters to act as (ids 1..N).",
)
@click.option(
    "--workers",
    "workers_",
    type=click.IntRange(1, 50),
    default=4,
    show_default=True,
    help="Workers they configure (demo-worker-1..N).",
)
@pass_context
def demo(ctx: Context, count: int, workers_: int) -> None:
    """Act as masters through a day against a running daemon, then show the tables."""
    from registryd.operator import demo as day  # noqa: PLC0415

    _operate(ctx, lambda client: day(client, count, workers_, echo=click.echo))
