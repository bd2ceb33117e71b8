"""Redis: key names, Lua scripts and the store that runs them."""

from registryd.store.keys import Keys
from registryd.store.redis import DUPLICATE, RedisStore, StoreSettings

__all__ = ["DUPLICATE", "Keys", "RedisStore", "StoreSettings"]
