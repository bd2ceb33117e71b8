"""Pure registry rules: no I/O here."""

from registryd.registry.auth import authorize
from registryd.registry.filters import WorkerFilter, select_workers

__all__ = ["WorkerFilter", "authorize", "select_workers"]
