"""Every Redis key name registryd uses, built in this one place.

All keys share the hash tag ``{<prefix>}`` so that one registry lives in one Redis
Cluster slot and every Lua script may touch all of it atomically. A script gets one
``KEY``, that hash-tagged base (it routes the script to the registry's slot), and
names every key from it: the prelude's ``local K_EPOCH = BASE .. ':epoch'`` lines are
generated from :data:`SCRIPT_KEYS` and :func:`script_key_suffixes`
(:mod:`registryd.store.lua`). Passing the 21 names as ``KEYS`` cost more to encode
than the rest of a write's command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["ID_SPAN", "LAYOUT_VERSION", "SCRIPT_KEYS", "Keys", "script_key_suffixes"]

#: The Lua name of each fixed key and per-entity key prefix, and its :class:`Keys` attribute.
SCRIPT_KEYS: tuple[tuple[str, str], ...] = (
    ("K_EPOCH", "epoch"),
    ("K_REV", "revision"),
    ("K_CHANGES", "changes"),
    ("K_NEXTID", "next_worker_id"),
    ("K_NAMES", "names"),
    ("K_WORKERS", "workers"),
    ("K_MASTERS", "masters"),
    ("K_LEASES", "leases"),
    ("K_RESET", "reset"),
    ("K_CURSOR", "relay_cursor"),
    ("K_RELAY_LOCK", "relay_lock"),
    ("K_LAYOUT", "layout"),
    ("K_PAUSED", "paused"),
    ("K_GRACEFUL", "graceful"),
    ("P_WORKER", "worker_prefix"),
    ("P_MASTER", "master_prefix"),
    ("P_CFG", "configured_prefix"),
    ("P_CONN", "connected_prefix"),
    ("P_MSG", "message_prefix"),
    ("P_BUILDER", "builder_prefix"),
    ("P_SESSION", "session_prefix"),
    ("P_HOLDER", "holder_prefix"),
)

#: Worker ids one set of a split index holds (builder, configured and connected sets,
#: ``<prefix><id>:<worker id // ID_SPAN>``): at most Redis's default
#: ``set-max-intset-entries``, so that each set stays an intset.
ID_SPAN: Final = 512

#: The layout of the keys this version writes; ``RedisStore.init_epoch`` migrates an
#: older one at start (``migrate.lua``). 1 (no layout key): the worker was a hash of
#: its fields and its document; 2: the worker is its document alone, with index sets;
#: 3: the builder and connected sets are split by worker id, 512 ids a set; 4: the
#: master's configured sets are split too.
LAYOUT_VERSION: Final = 4


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one registry, for one prefix."""

    prefix: str

    @property
    def base(self) -> str:
        """The hash-tagged base every key starts with."""
        return "{" + self.prefix + "}"

    @property
    def epoch(self) -> str:
        """String: the random id of the current state (PROTOCOL.md section 6, Reset)."""
        return f"{self.base}:epoch"

    @property
    def revision(self) -> str:
        """String: the last revision handed out."""
        return f"{self.base}:rev"

    @property
    def changes(self) -> str:
        """Stream: the change log, one entry per revision, entry id ``<revision>-1``."""
        return f"{self.base}:changes"

    @property
    def next_worker_id(self) -> str:
        """String: the last worker id handed out."""
        return f"{self.base}:nextid"

    @property
    def names(self) -> str:
        """Hash: worker name to worker id."""
        return f"{self.base}:names"

    @property
    def workers(self) -> str:
        """Sorted set: every worker id, scored by itself."""
        return f"{self.base}:workers"

    @property
    def masters(self) -> str:
        """Sorted set: every master listed by ``getMasters``, scored by id."""
        return f"{self.base}:masters"

    @property
    def leases(self) -> str:
        """Sorted set: active masters scored by the time (ms) their lease ends."""
        return f"{self.base}:leases"

    @property
    def reset(self) -> str:
        """String: an epoch whose ``registry.reset`` notification is not published yet."""
        return f"{self.base}:reset"

    @property
    def relay_cursor(self) -> str:
        """String: the last revision the relay has published."""
        return f"{self.base}:relay:cursor"

    @property
    def relay_lock(self) -> str:
        """String: the token of the one process that relays notifications now."""
        return f"{self.base}:relay:lock"

    @property
    def layout(self) -> str:
        """String: the version of this key layout (:data:`LAYOUT_VERSION`; none is 1)."""
        return f"{self.base}:layout"

    @property
    def paused(self) -> str:
        """Set: the ids of the paused workers."""
        return f"{self.base}:paused"

    @property
    def graceful(self) -> str:
        """Set: the ids of the workers with ``graceful`` set."""
        return f"{self.base}:graceful"

    @property
    def wait_fence(self) -> str:
        """String: written just before each ``WAIT`` (with ``wait_replicas`` on).

        ``WAIT`` counts the replicas that reached the calling connection's last write. A
        write whose script did nothing (a replayed ``message_id``) or was made on another
        connection would escape it; writing the fence first makes ``WAIT`` cover every
        earlier write of the master.
        """
        return f"{self.base}:wait:fence"

    @property
    def worker_prefix(self) -> str:
        """Prefix of ``<prefix><id>``: string, one worker's JSON document (section 1)."""
        return f"{self.base}:w:"

    @property
    def builder_prefix(self) -> str:
        """Prefix of ``<prefix><builderid>:<span>``: set of worker ids with a pair on it.

        ``span`` is the worker id // :data:`ID_SPAN`: each set holds at most that many
        ids, so that it stays an intset.
        """
        return f"{self.base}:bld:"

    @property
    def session_prefix(self) -> str:
        """Prefix of ``<prefix><id>``: hash, master id to the worker's remembered connection."""
        return f"{self.base}:wc:"

    @property
    def holder_prefix(self) -> str:
        """Prefix of ``<prefix><id // 100>``: hash, worker id to its change-log holder.

        The value is ``"<revision>:<first 8 characters of the epoch>"``: the worker's
        last change-log entry that holds its name and workerinfo (``_lib.lua``). A hundred
        workers share a hash so that each stays a small listpack.
        """
        return f"{self.base}:wh:"

    @property
    def master_prefix(self) -> str:
        """Prefix of ``<prefix><id>``: hash with one master's name, state and last_seen."""
        return f"{self.base}:m:"

    @property
    def configured_prefix(self) -> str:
        """Prefix of ``<prefix><masterid>:<span>``: set of worker ids with pairs on that master.

        Split by worker id // :data:`ID_SPAN` as :attr:`builder_prefix` is, so that a
        master's listing sorts its sets one short span at a time, in span order
        (``sorted.py``).
        """
        return f"{self.base}:mcfg:"

    @property
    def connected_prefix(self) -> str:
        """Prefix of ``<prefix><masterid>:<span>``: set of worker ids connected to it.

        Split by worker id // :data:`ID_SPAN` as :attr:`builder_prefix` is.
        """
        return f"{self.base}:mconn:"

    @property
    def message_prefix(self) -> str:
        """Prefix of ``<prefix><generation>:<2 hex digits>``: hash of remembered message_ids.

        One generation is ``message memory`` long; its ids are spread over 256 hashes by
        the first two hex digits of their SHA-1 (``_lib.lua``).
        """
        return f"{self.base}:msg:"

    def worker(self, workerid: int) -> str:
        """The document of one worker."""
        return f"{self.worker_prefix}{workerid}"

    def sessions(self, workerid: int) -> str:
        """The remembered connections of one worker."""
        return f"{self.session_prefix}{workerid}"

    def script_keys(self) -> list[str]:
        """``KEYS`` of every Lua script: the base, from which the scripts name every key."""
        return [self.base]

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this registry (for clean-up in tests)."""
        escaped = self.base.replace("{", "\\{").replace("}", "\\}")
        return f"{escaped}:*"


def script_key_suffixes() -> list[tuple[str, str]]:
    """Each :data:`SCRIPT_KEYS` name with what its key adds to the base (``':epoch'``)."""
    sample = Keys("p")
    suffixes = []
    for name, attribute in SCRIPT_KEYS:
        key: str = getattr(sample, attribute)
        if not key.startswith(sample.base):
            raise ValueError(f"{attribute} does not start with the base: {key!r}")
        suffixes.append((name, key.removeprefix(sample.base)))
    return suffixes
