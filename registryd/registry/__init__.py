"""Pure registry rules: no I/O here."""

from registryd.registry.auth import authorize
from registryd.registry.filters import WorkerFilter, select_workers
from registryd.registry.validation import describe, parse_params

__all__ = ["WorkerFilter", "authorize", "describe", "parse_params", "select_workers"]
