"""Who owns an account, read once per process: an account's owner never changes once it
is opened, so the consumers that need it (screening: is the payee the payer's own
account; the notifier and insights: whose feed and economy the payee's side goes to)
keep it in memory and read only the accounts they have not seen.

Always read outside any unit of work: a transactional read of a payee's account locks it
against the ledger's credits to it (a hot merchant's commits aborted by every other
service's reads of it).
"""

from __future__ import annotations

from collections.abc import Iterable

from fjordbank.adapters.firestore import ACCOUNTS
from fjordbank.service_layer.ports import AsyncDocuments

CACHED = 100_000  # accounts kept; past it the cache starts again (bounded memory)


class Owners:
    def __init__(self, docs: AsyncDocuments, *, limit: int = CACHED) -> None:
        self.docs = docs
        self.limit = limit
        self._owners: dict[str, str] = {}

    def clear(self) -> None:
        self._owners.clear()

    async def of(self, accounts: Iterable[str]) -> dict[str, str | None]:
        """account -> owner uid (None: no such account, or not opened yet: not cached).
        The accounts not seen before are read in one round trip."""
        wanted = list(dict.fromkeys(accounts))
        if len(self._owners) > self.limit:
            self._owners.clear()
        missing = {f"{ACCOUNTS}/{a}": a for a in wanted if a not in self._owners}
        if missing:
            for path, doc in (await self.docs.get_many(list(missing))).items():
                owner = doc.data.get("ownerUid") if doc is not None else None
                if owner:
                    self._owners[missing[path]] = owner
        return {a: self._owners.get(a) for a in wanted}
