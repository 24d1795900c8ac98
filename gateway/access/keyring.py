"""The gateway keys in force: the config's `auth.keys` plus the runtime keys of the state
backend (made and revoked through the admin API, on every instance within ~`refresh_s`).

`authenticate(token)` hashes the token once (SHA-256) and compares the digest with every
key's digest with `hmac.compare_digest`, so the time taken says nothing about which key
(or how much of one) matched; keys are held as digests only.
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.access.runtime_keys import RuntimeKeyStore
from gateway.config.model import Config, KeyConfig


class NameTaken(Exception):
    """A runtime key's name is already used by a config or runtime key."""


class KeyRing:
    def __init__(self, config: Config, store: RuntimeKeyStore) -> None:
        self.enabled = config.auth.enabled
        self._config_keys = config.auth.keys
        self.store = store
        self._keys: tuple[KeyConfig, ...] = ()
        self._by_name: dict[str, KeyConfig] = {}
        self._rebuild()  # after a config reload the store already holds runtime keys
        store.on_change(self._rebuild)

    def detach(self) -> None:
        """A config reload replaced this key ring: stop following the store's changes."""
        self.store.off_change(self._rebuild)

    def _rebuild(self) -> None:
        names = {k.name for k in self._config_keys}
        runtime = tuple(k for k in self.store.keys() if k.name not in names)  # config wins
        self._keys = (*self._config_keys, *runtime)
        self._by_name = {k.name: k for k in self._keys}

    def authenticate(self, token: str) -> KeyConfig | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for key in self._keys:  # compare with every key: timing tells nothing
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def get(self, name: str) -> KeyConfig | None:
        return self._by_name.get(name)

    def keys(self) -> tuple[KeyConfig, ...]:
        return self._keys

    async def create(self, key: KeyConfig) -> None:
        """Store a runtime key; NameTaken when its name is in use."""
        if key.name in self._by_name or not await self.store.create(key):
            raise NameTaken(key.name)

    async def revoke(self, name: str) -> bool:
        """Remove a runtime key everywhere; False when no runtime key has that name."""
        return await self.store.revoke(name)

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()
