"""registryd: the worker registry of a multi-master CI system."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("registryd")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
