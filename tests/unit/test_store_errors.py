"""How the store names Redis's refusals: "not now" is unavailable (retried), never a dead letter."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AskError,
    MovedError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from registryd.errors import EpochMissing, Internal, NotFound, RegistryError, Unavailable
from registryd.store.redis import redis_errors

NOT_NOW = [
    ReadOnlyError("You can't write against a read only replica."),
    TryAgainError("Multiple keys request during rehashing of slot"),
    MovedError("3999 127.0.0.1:6381"),
    AskError("3999 127.0.0.1:6381"),
    ResponseError("LOADING Redis is loading the dataset in memory"),
    ResponseError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is no"),
    ResponseError("CLUSTERDOWN The cluster is down"),
    ResponseError("BUSY Redis is busy running a script."),
    # The relay's XREAD BLOCK when its master turned replica (a cluster failover): CI once
    # crashed the relay on it, and the daemon was not ready for the crash window.
    ResponseError(
        "UNBLOCKED force unblock from blocking operation, instance state changed "
        "(master -> replica?)"
    ),
    # redis-py's cluster pipeline retried without the target nodes it was given.
    RedisClusterException("No way to dispatch this command to Redis Cluster. Missing key."),
    SlotNotCoveredError("Slot 3999 not covered by the cluster"),
]


def _mapped(error: Exception) -> RegistryError:
    with pytest.raises(RegistryError) as raised, redis_errors():
        raise error
    return raised.value


@pytest.mark.parametrize("error", NOT_NOW, ids=lambda e: type(e).__name__ + ":" + str(e)[:12])
def test_not_now_is_unavailable(error: Exception) -> None:
    """A refusal that says "not now" is unavailable: the batch or call is retried."""
    assert isinstance(_mapped(error), Unavailable)


def test_script_refusals_keep_their_code() -> None:
    """The scripts' own refusals become the protocol's errors."""
    assert isinstance(_mapped(ResponseError("NOT_FOUND no worker with id 7")), NotFound)
    assert isinstance(_mapped(ResponseError("NOEPOCH the registry has no epoch")), EpochMissing)


def test_anything_else_is_internal() -> None:
    """Any other reply is registryd's bug: internal, with Redis's words kept."""
    mapped = _mapped(ResponseError("ERR user_script:3: Script attempted to access nil"))
    assert isinstance(mapped, Internal)
    assert "Script attempted" in mapped.message
