"""PROTOCOL.md, section by section (``test_s<N>_*.py``), checked black-box.

Every test talks to registryd the way an outside program does, through
:class:`tests.harness.Wire`: bare aio-pika on ``<prefix>.events``, ``<prefix>.rpc``
(named reply queue or ``amq.rabbitmq.reply-to``), ``<prefix>.notifications`` and
``<prefix>.dead``, plus ``python -m registryd serve|check`` subprocesses where a process
is needed. Nothing here uses the daemon's models; Redis is read only by the
:meth:`~tests.harness.Wire.settled` barrier and to simulate lost data, and the in-process
daemon is a faster way to run ``serve``. Each docstring quotes the sentence it pins.
Case tables are parametrized; the tables of refusals live in ``test_s<N>_refusals.py``
(and ``test_s1_identifiers.py``, ``test_s5_envelopes.py``) and share one registry per
module (see ``conftest.py``).
"""
