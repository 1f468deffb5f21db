"""Firestore clients that work the same against the emulator and production.

With FIRESTORE_EMULATOR_HOST set (the local stack, tests), the clients use the project id
and anonymous credentials, as the emulator expects; in production, default credentials.
"""

from __future__ import annotations

import os

from google.api_core import exceptions as api_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

# Collections (one place for their names).
ACCOUNTS = "accounts"
POSTINGS = "postings"
LEDGER_PAYMENTS = "ledgerPayments"
HOLDS = "holds"
TRANSACTIONS = "transactions"  # accounts/{id}/transactions/{paymentId}: the app's feed
PUSHES = "pushes"
PAYMENT_VIEWS = (
    "paymentViews"  # the state the notifier has shown for each payment  # pushes/{dedupeKey}: each push delivered once
)
SCREENING_CUSTOMERS = "screeningCustomers"
SCREENING_DECISIONS = "screeningDecisions"
CLEARING_PAYMENTS = "clearingPayments"
CLEARING_FILES = "clearingFiles"
USERS = "users"
CUSTOMERS = "customers"  # customers/{uid}: the onboarding result and the customer's profile
CARDS = "cards"  # cards/{cardId}: the app's view of a card (never its number)
PAYMENT_REQUESTS = "paymentRequests"
# users/{uid}/...: the customer's read model beside the request documents
CATEGORY_OVERRIDES = "categoryOverrides"  # {key}: the customer's category for a merchant or payee
ECONOMY = "economy"  # {YYYY-MM}: my economy
ECONOMY_ITEMS = "economyItems"  # {txId}: what one booking adds to its month
MERCHANT_HISTORY = "merchantHistory"  # {key}: recent charges, for subscription detection
SUBSCRIPTIONS = "subscriptions"  # {key}: a detected subscription
STANDING_ORDERS = "standingOrders"  # {orderId}: scheduled and repeating payments


def user_doc(db, uid: str, collection: str, doc_id: str):
    return db.collection(USERS).document(uid).collection(collection).document(doc_id)


# Errors after which the same request may well succeed a moment later: contention (ABORTED),
# or a database that did not answer in time or is overloaded.
TRANSIENT = (
    api_errors.Aborted,
    api_errors.DeadlineExceeded,
    api_errors.ServiceUnavailable,
    api_errors.ResourceExhausted,
    api_errors.RetryError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` means "try again later" rather than a bug. The client's
    ``@transactional`` gives up on a transaction that lost every attempt to contention with
    a ValueError ("Failed to commit transaction in N attempts") caused by ABORTED."""
    if isinstance(exc, ValueError) and isinstance(exc.__cause__, api_errors.Aborted):
        return True
    return isinstance(exc, TRANSIENT)


def _kwargs(project_id: str) -> dict:
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return {"project": project_id, "credentials": AnonymousCredentials()}
    return {"project": project_id}


def sync_client(project_id: str) -> firestore.Client:
    return firestore.Client(**_kwargs(project_id))


def async_client(project_id: str) -> firestore.AsyncClient:
    return firestore.AsyncClient(**_kwargs(project_id))


def request_path(uid: str, request_id: str) -> str:
    return f"{USERS}/{uid}/{PAYMENT_REQUESTS}/{request_id}"
