"""The ``registryd`` command: ``serve`` and ``check`` here, operator commands alongside."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import structlog

from registryd import __version__
from registryd.config import Settings, load_settings
from registryd.errors import ConfigError

if TYPE_CHECKING:
    from registryd.daemon import Daemon

__all__ = ["main"]

log = structlog.get_logger(__name__)


class Context:
    """What every subcommand gets: the configuration file's path, read on demand."""

    def __init__(self, config: Path | None) -> None:
        self.config = config

    def settings(self) -> Settings:
        """The settings (file under environment), or a clear error and exit code 2."""
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


async def _serve(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:  # a second signal means "now", as with uvicorn
            log.warning("second signal: exiting at once", signal=signal.Signals(signum).name)
            sys.stderr.flush()
            loop.stop()
            raise SystemExit(1)
        log.info("stopping", signal=signal.Signals(signum).name, grace=daemon.settings.grace)
        daemon.request_stop()

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
