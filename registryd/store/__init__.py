"""Redis: key names, Lua scripts and the store that runs them."""

from registryd.store.keys import Keys
from registryd.store.redis import RedisClient, RedisStore, RelayStore, StoreSettings

__all__ = ["Keys", "RedisClient", "RedisStore", "RelayStore", "StoreSettings"]
