"""Who owns an account, read once per process: an account's owner never changes once it
is opened, so the consumers that need it (screening: is the payee the payer's own
account; the notifier and insights: whose feed and economy the payee's side goes to)
keep it in memory and read only the accounts they have not seen.

Always read outside any transaction: a transactional read of a payee's account locks it
against the ledger's credits to it (a hot merchant's commits aborted by every other
service's reads of it).
"""

from __future__ import annotations

from collections.abc import Iterable

from google.cloud import firestore

from fjordbank.adapters.firestore import ACCOUNTS

CACHED = 100_000  # accounts kept; past it the cache starts again (bounded memory)


class Owners:
    def __init__(self, db: firestore.AsyncClient, *, limit: int = CACHED) -> None:
        self.db = db
        self.limit = limit
        self._owners: dict[str, str] = {}

    def clear(self) -> None:
        self._owners.clear()

    async def of(self, accounts: Iterable[str]) -> dict[str, str | None]:
        """account -> owner uid (None: no such account, or not opened yet: not cached)."""
        wanted = list(dict.fromkeys(accounts))
        if len(self._owners) > self.limit:
            self._owners.clear()
        missing = [a for a in wanted if a not in self._owners]
        if missing:
            refs = [self.db.collection(ACCOUNTS).document(a) for a in missing]
            async for snap in self.db.get_all(refs):
                owner = (snap.to_dict() or {}).get("ownerUid") if snap.exists else None
                if owner:
                    self._owners[snap.id] = owner
        return {a: self._owners.get(a) for a in wanted}
