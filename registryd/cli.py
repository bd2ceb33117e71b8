"""The ``registryd`` command: ``serve``, ``check`` and the operator commands.

The operator commands (``workers``, ``worker``, ``masters``, ``watch``, ``dead-letters``,
``demo``) are thin: their work is in :mod:`registryd.operator`. They talk to a running
daemon through RabbitMQ only (``dead-letters`` needs none: it reads the dead queue).
When something fails they print one line on stderr and exit with a code of
:class:`~registryd.operator.Exit` (:data:`EXIT_CODES` is the table ``--help`` shows).
``--config`` and ``--prefix`` are accepted before or after the subcommand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import click
import structlog

from registryd import __version__
from registryd.config import Settings, load_settings, unknown_variables
from registryd.errors import ConfigError

if TYPE_CHECKING:
    from registryd.client import RegistryClient
    from registryd.daemon import Daemon
    from registryd.operator import DeadLetterAction

__all__ = ["EXIT_CODES", "main"]

log = structlog.get_logger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])
#: The exit code of a usage or configuration error (``Exit.USAGE``; the operator
#: package is not imported for it, so that ``--help`` and ``serve`` stay light).
_USAGE: Final = 2

#: The exit codes, as ``registryd --help`` and docs/cli.md show them.
EXIT_CODES: Final = """\
Exit codes:
  0    done
  1    not found: `worker` matched no worker (with --json it prints null),
       `dead-letters --message-id` matched no dead letter
  2    usage or configuration error (an option, the file, a setting, a variable)
  3    unavailable: RabbitMQ cannot be reached or refused the login, no daemon
       consumes <prefix>.rpc, or the daemon did not answer in time
  4    refused: the daemon answered another error, or the command declined to act
       (`demo` on a registry in use without --force, a replay or drop not confirmed)
  130  interrupted (Ctrl-C)
`check` exits 0 when RabbitMQ and Redis answer, 1 when one does not; `serve` exits 0
after SIGTERM or SIGINT, 1 when it cannot start (its metrics port is taken); both
exit 2 on bad configuration."""


class Context:
    """What every subcommand gets: where the settings come from, read on demand."""

    def __init__(self, config: Path | None, prefix: str | None) -> None:
        self.config = config
        self.prefix = prefix

    def settings(self) -> Settings:
        """The settings (options over environment over file), or a one-line error and exit 2."""
        overrides = {"prefix": self.prefix} if self.prefix is not None else None
        try:
            return load_settings(self.config, overrides=overrides)
        except ConfigError as exc:
            fail(str(exc), _USAGE)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, ``registryd: ...`` (passwords masked), then exit ``code``."""
    from registryd.logs import mask  # noqa: PLC0415 - keeps the light commands fast

    click.echo(f"registryd: {mask(message)}", err=True)
    sys.exit(code)


def _warn_unknown_variables() -> None:
    for warning in unknown_variables():
        click.echo(f"registryd: warning: {warning}", err=True)


pass_context = click.make_pass_decorator(Context)

_CONFIG_HELP = "TOML configuration file; REGISTRYD_* variables override it."
_PREFIX_HELP = "The registry's prefix (over REGISTRYD_PREFIX and the file's prefix)."
_CONFIG_TYPE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _set(attribute: str) -> Callable[[click.Context, click.Parameter, object], None]:
    """An option callback that sets ``attribute`` of the :class:`Context` when given."""

    def callback(ctx: click.Context, _param: click.Parameter, value: object) -> None:
        if value is not None:
            setattr(ctx.ensure_object(Context), attribute, value)

    return callback


def _where_options(command: _F) -> _F:
    """``--config`` and ``--prefix`` after the subcommand too (``registryd check --config x``)."""
    command = click.option(
        "--prefix", expose_value=False, callback=_set("prefix"), help=_PREFIX_HELP
    )(command)
    return click.option(
        "--config",
        type=_CONFIG_TYPE,
        expose_value=False,
        callback=_set("config"),
        help=_CONFIG_HELP,
    )(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog="\b\n" + EXIT_CODES)
@click.version_option(__version__, prog_name="registryd")
@click.option("--config", type=_CONFIG_TYPE, envvar="REGISTRYD_CONFIG", help=_CONFIG_HELP)
@click.option("--prefix", help=_PREFIX_HELP)
@click.pass_context
def main(ctx: click.Context, config: Path | None, prefix: str | None) -> None:
    """registryd: the worker registry of a multi-master CI system."""
    ctx.obj = Context(config, prefix)


@main.command()
@_where_options
@pass_context
def serve(ctx: Context) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    import uvloop  # noqa: PLC0415 - keeps the light commands fast

    from registryd.daemon import Daemon  # noqa: PLC0415
    from registryd.logs import configure_logging  # noqa: PLC0415

    settings = ctx.settings()
    configure_logging(settings.log_format, settings.log_level)
    for warning in unknown_variables():
        log.warning(warning)
    try:
        # uvloop: its loop and transports (libuv, in C) cost the daemon less CPU per
        # RPC than asyncio's selector loop (measured: bench/RESULTS.md, item 2).
        uvloop.run(_serve(Daemon(settings)))
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


def _quiet_broker_libraries() -> None:
    """The broker libraries log what they then raise; the one-line error says it already."""
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@main.command()
@_where_options
@pass_context
def check(ctx: Context) -> None:
    """Exit 0 when RabbitMQ and Redis answer, 1 otherwise (one line on stdout).

    A backend that refuses registryd (a wrong password, a missing vhost or database)
    is named with what to correct: retrying will not fix it.
    """
    from registryd.probe import probe  # noqa: PLC0415

    _warn_unknown_variables()
    settings = ctx.settings()
    _quiet_broker_libraries()
    failed = asyncio.run(probe(settings))
    if failed:
        click.echo("failed: " + "; ".join(f"{name} ({why})" for name, why in failed))
        sys.exit(1)
    click.echo("ok: rabbitmq and redis answer")


# -- operator commands ---------------------------------------------------------------------

#: An operator command's work, given a client whose daemon answered.
Action = Callable[["RegistryClient"], Coroutine[Any, Any, None]]

json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


def _failure(error: BaseException, settings: Settings) -> tuple[str, int]:
    """The one line and exit code of a failed command; refusals say what to correct."""
    from registryd.diagnose import configured_refusal  # noqa: PLC0415
    from registryd.errors import RegistryError  # noqa: PLC0415
    from registryd.operator import Exit, Refused, exit_code  # noqa: PLC0415

    found = configured_refusal(error, settings)
    if found is not None:
        return found.message, Exit.UNAVAILABLE
    if isinstance(error, RegistryError):
        return error.message, exit_code(error)
    if isinstance(error, Refused):
        return str(error), exit_code(error)
    return f"RabbitMQ failed: {error}", Exit.UNAVAILABLE


def _run(settings: Settings, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work``; a failure is one line and its exit code, Ctrl-C is 130."""
    from registryd.broker import BROKER_ERRORS  # noqa: PLC0415
    from registryd.errors import RegistryError  # noqa: PLC0415
    from registryd.logs import configure_logging  # noqa: PLC0415
    from registryd.operator import Refused  # noqa: PLC0415

    # Library warnings go to stderr; stdout is the command's output (JSON for scripts).
    configure_logging(settings.log_format, "warning")
    _quiet_broker_libraries()
    try:
        asyncio.run(work)
    except (RegistryError, Refused, *BROKER_ERRORS) as exc:
        fail(*_failure(exc, settings))
    except KeyboardInterrupt:
        sys.exit(130)


def _operate(ctx: Context, action: Action, *, daemon: bool = True, wait: float = 0.0) -> None:
    """Connect (with ``daemon``: check that one answers, fast), then run ``action``."""
    from registryd.operator import connected  # noqa: PLC0415

    _warn_unknown_variables()
    settings = ctx.settings()

    async def work() -> None:
        async with connected(settings, daemon=daemon, wait=wait) as client:
            await action(client)

    _run(settings, work())


def _err(line: str) -> None:
    click.echo(line, err=True)


def _confirm(question: str) -> bool:
    """Ask on stderr (stdout may be JSON); no answer (end of input) is a no."""
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort:
        return False


@main.command()
@click.option("--master", type=click.IntRange(min=1), help="Configured on this master id.")
@click.option("--builder", type=click.IntRange(min=1), help="Configured for this builder id.")
@click.option("--paused/--no-paused", default=None, help="Only paused (or unpaused) workers.")
@click.option("--graceful/--no-graceful", default=None, help="Only workers (not) stopping.")
@json_option
@_where_options
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
@_where_options
@pass_context
def worker(ctx: Context, workerid: int | None, name: str | None, as_json: bool) -> None:
    """Show one worker by ID or --name; exit 1 when there is none (--json: null)."""
    from registryd.operator import show_worker  # noqa: PLC0415

    if (workerid is None) == (name is None):
        raise click.UsageError("give a worker ID or --name NAME (one of them)")
    _operate(
        ctx, lambda client: show_worker(client, workerid, name, as_json=as_json, echo=click.echo)
    )


@main.command()
@json_option
@_where_options
@pass_context
def masters(ctx: Context, as_json: bool) -> None:
    """List masters (getMasters): id, name, active, last_seen."""
    from registryd.operator import show_masters  # noqa: PLC0415

    _operate(ctx, lambda client: show_masters(client, as_json=as_json, echo=click.echo))


@main.command()
@click.option(
    "--since", type=click.IntRange(min=0), help="First print the changes after this revision."
)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per line (with received_at)."
)
@_where_options
@pass_context
def watch(ctx: Context, since: int | None, as_json: bool) -> None:
    """Print each change notification as it comes, until Ctrl-C or SIGTERM.

    Each line starts with the time it was received (UTC).
    """
    from registryd.operator import watch as follow  # noqa: PLC0415

    _operate(ctx, lambda client: follow(client, since, as_json=as_json, echo=click.echo, note=_err))


@main.command("dead-letters")
@click.option(
    "--json", "as_json", is_flag=True, help="The messages as one JSON list; the summary on stderr."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Take at most N."
)
@click.option(
    "--message-id",
    "message_ids",
    multiple=True,
    metavar="ID",
    help="Only the dead letter with this message_id (repeatable).",
)
@click.option("--replay", is_flag=True, help="Publish them to <prefix>.events again.")
@click.option("--drop", is_flag=True, help="Delete them.")
@click.option("--yes", "-y", is_flag=True, help="Replay or drop without asking.")
@_where_options
@pass_context
def dead_letters(
    ctx: Context,
    *,
    as_json: bool,
    limit: int,
    message_ids: tuple[str, ...],
    replay: bool,
    drop: bool,
    yes: bool,
) -> None:
    """List the rejected events of <prefix>.dead (left there), or replay or drop them.

    Needs no running daemon. Each shows its message_id, the routing key it was
    published with, when it was rejected and why. --replay and --drop ask first.
    """
    from registryd.operator import dead_letters as handle  # noqa: PLC0415

    if replay and drop:
        raise click.UsageError("--replay and --drop exclude each other")
    action: DeadLetterAction = "replay" if replay else "drop" if drop else "list"
    confirm = None if yes else _confirm

    def act(client: RegistryClient) -> Coroutine[Any, Any, None]:
        return handle(
            client,
            action,
            limit,
            message_ids=message_ids,
            confirm=confirm,
            as_json=as_json,
            echo=click.echo,
            note=_err,
        )

    _operate(ctx, act, daemon=False)


@main.command()
@click.option(
    "--masters",
    "count",
    type=click.IntRange(1, 9),
    default=2,
    show_default=True,
    help="Masters to act as (ids 9001..9000+N).",
)
@click.option(
    "--workers",
    "workers_",
    type=click.IntRange(1, 50),
    default=4,
    show_default=True,
    help="Workers they configure (demo-worker-1..N).",
)
@click.option("--force", is_flag=True, help="Run even on a registry that holds other data.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    help="Seconds to wait for a daemon that is starting.",
)
@_where_options
@pass_context
def demo(ctx: Context, *, count: int, workers_: int, force: bool, wait: float) -> None:
    """Act as masters through a day against a running daemon, show the tables, clean up.

    It refuses a registry that holds anything but its own masters (9001 and up) and
    workers (demo-worker-N) unless --force; it never touches anything else.
    """
    from registryd.operator import demo as day  # noqa: PLC0415

    _operate(
        ctx,
        lambda client: day(client, count, workers_, force=force, echo=click.echo),
        wait=wait,
    )


@main.command("purge-demo", hidden=True)
@click.option("--force", is_flag=True, help="Delete even a prefix that holds other data.")
@_where_options
@pass_context
def purge_demo(ctx: Context, force: bool) -> None:
    """Delete a stopped demo's prefix: Redis keys, queues, exchanges (``make demo``)."""
    from registryd.purge import purge_demo as purge  # noqa: PLC0415

    settings = ctx.settings()

    async def work() -> None:
        click.echo(await purge(settings, force=force))

    _run(settings, work())
