"""The ledger's Book written in a raw Firestore transaction, for the card store
(fjordbank.adapters.card_store), whose transactions are not on the document ports yet.

The ledger's use cases live in fjordbank.service_layer.ledger; this writes the same
documents the same way (`fjordbank.service_layer.ledger.write_book` through the ports'
Firestore writer), so a card capture and a payment step leave identical accounts, postings
and holds. It goes when the card store moves to the ports.
"""

from __future__ import annotations

from google.cloud import firestore
from google.cloud.firestore_v1 import AsyncTransaction

from fjordbank.adapters.documents import AsyncFirestoreUnitOfWork
from fjordbank.domain.ledger import Book
from fjordbank.service_layer import ledger
from fjordbank.service_layer.ledger import account_from_doc

__all__ = ["account_from_doc", "write_book"]


def write_book(tx: AsyncTransaction, db: firestore.AsyncClient, book: Book) -> None:
    """What one commit's Book changed, written in ``tx`` (see ledger.write_book)."""
    ledger.write_book(AsyncFirestoreUnitOfWork(db, tx), book)
