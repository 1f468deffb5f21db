"""Who owns an account, read once per process: an account's owner never changes once it
is opened, so the consumers that need it (screening: is the payee the payer's own
account; the notifier and insights: whose feed and economy the payee's side goes to)
keep it in memory and read only the accounts they have not seen and no event told them
(the edge puts an internal payment's payee in its events).

Always read outside any unit of work: a transactional read of a payee's account locks it
against the ledger's credits to it (a hot merchant's commits aborted by every other
service's reads of it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fjordbank.adapters.firestore import ACCOUNTS
from fjordbank.service_layer.ports import AsyncDocuments
from fjordbank.service_layer.recent import Recent

CACHED = 100_000  # accounts kept, the least recently used out (bounded memory)


class Owners:
    def __init__(self, docs: AsyncDocuments, *, limit: int = CACHED) -> None:
        self.docs = docs
        self._owners: Recent[str, str] = Recent(limit)

    def clear(self) -> None:
        self._owners.clear()

    async def of(self, accounts: Iterable[str], *, told: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """account -> owner uid (None: no such account, or not opened yet: not cached).
        The accounts not seen before and not ``told`` (by the edge, which read them:
        fjordbank.domain.payments.told_owners) are read in one round trip."""
        for account, uid in (told or {}).items():
            if self._owners.get(account) is None:
                self._owners.put(account, uid)
        wanted = list(dict.fromkeys(accounts))
        known = {a: owner for a in wanted if (owner := self._owners.get(a)) is not None}
        missing = {f"{ACCOUNTS}/{a}": a for a in wanted if a not in known}
        if missing:
            for path, doc in (await self.docs.get_many(list(missing))).items():
                owner = doc.data.get("ownerUid") if doc is not None else None
                if owner:
                    self._owners.put(missing[path], owner)
                    known[missing[path]] = owner
        return {a: known.get(a) for a in wanted}
