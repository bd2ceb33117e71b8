"""Operator commands: list workers and masters, follow changes, handle dead letters, demo.

Everything here talks to a running registryd through RabbitMQ only: the
:class:`~registryd.client.RegistryClient`, plus basic.get on the dead queue (which needs
no daemon). Nothing here touches Redis. Formatting is done by pure functions (tested
alone); the ``async`` commands write lines through an :data:`Echo` (``click.echo`` in
the CLI) and raise a
:class:`~registryd.errors.RegistryError` (or :class:`Refused`) for the CLI to print as
one line and exit with its :class:`Exit` code.
"""

from registryd.operator.commands import connected, show_masters, show_worker, show_workers, watch
from registryd.operator.common import (
    TIMEOUT,
    Confirm,
    DeadLetterAction,
    Echo,
    Exit,
    Refused,
    exit_code,
)
from registryd.operator.dead_letters import dead_letters
from registryd.operator.demo import demo
from registryd.operator.demo_scope import DEMO_MASTERS, DEMO_WORKER_PREFIX, foreign_data
from registryd.operator.format import (
    change_json,
    change_line,
    compact_pairs,
    dead_letter_record,
    dead_letter_text,
    format_table,
    masters_table,
    parse_error_header,
    printable,
    replay_headers,
    replay_routing_key,
    timestamp,
    to_json,
    worker_details,
    workers_table,
)

__all__ = [
    "DEMO_MASTERS",
    "DEMO_WORKER_PREFIX",
    "TIMEOUT",
    "Confirm",
    "DeadLetterAction",
    "Echo",
    "Exit",
    "Refused",
    "change_json",
    "change_line",
    "compact_pairs",
    "connected",
    "dead_letter_record",
    "dead_letter_text",
    "dead_letters",
    "demo",
    "exit_code",
    "foreign_data",
    "format_table",
    "masters_table",
    "parse_error_header",
    "printable",
    "replay_headers",
    "replay_routing_key",
    "show_masters",
    "show_worker",
    "show_workers",
    "timestamp",
    "to_json",
    "watch",
    "worker_details",
    "workers_table",
]
