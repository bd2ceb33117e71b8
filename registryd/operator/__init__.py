"""Operator commands: list workers and masters, follow changes, handle dead letters, demo.

Everything here talks to a running registryd through RabbitMQ only: the
:class:`~registryd.client.RegistryClient`, plus basic.get on the dead queue. Nothing
here touches Redis. Formatting is done by pure functions (tested alone); the ``async``
commands write lines through an :data:`Echo` (``click.echo`` in the CLI) and raise a
:class:`~registryd.errors.RegistryError` for the CLI to print as one line.
"""

from registryd.operator.commands import connected, show_masters, show_worker, show_workers, watch
from registryd.operator.common import TIMEOUT, DeadLetterAction, Echo
from registryd.operator.dead_letters import dead_letters
from registryd.operator.demo import demo
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
    to_json,
    worker_details,
    workers_table,
)

__all__ = [
    "TIMEOUT",
    "DeadLetterAction",
    "Echo",
    "change_json",
    "change_line",
    "compact_pairs",
    "connected",
    "dead_letter_record",
    "dead_letter_text",
    "dead_letters",
    "demo",
    "format_table",
    "masters_table",
    "parse_error_header",
    "printable",
    "replay_headers",
    "replay_routing_key",
    "show_masters",
    "show_worker",
    "show_workers",
    "to_json",
    "watch",
    "worker_details",
    "workers_table",
]
