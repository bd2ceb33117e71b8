"""registryd's benchmark suite: ``python -m bench.suite`` (``make bench``, ``make bench-quick``)."""
