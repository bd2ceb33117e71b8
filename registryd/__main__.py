"""``python -m registryd``."""

from registryd.cli import main

main()
