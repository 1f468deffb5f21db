"""Fjordbank's Firebase functions: the edge between the app and the NATS cluster.

Thin: each function parses its trigger, calls a use case in fjordbank.service_layer and
translates errors. The shared `fjordbank` package is copied into this folder by the up
command and by `firebase deploy`'s predeploy hook, so the folder deploys on its own.
"""

from __future__ import annotations

import logging
import threading

from firebase_functions import firestore_fn, options

from fjordbank.adapters.firestore import sync_client
from fjordbank.adapters.publisher import SyncPublisher
from fjordbank.config import load_settings
from fjordbank.service_layer import edge

options.set_global_options(region="europe-west1", memory=options.MemoryOption.MB_512, max_instances=50)
logging.basicConfig(level=logging.INFO)

_lock = threading.Lock()
_deps: dict = {}


def deps() -> tuple:
    """One Firestore client and one NATS connection per function instance, made on first use."""
    with _lock:
        if not _deps:
            settings = load_settings(identity="edge")
            _deps["db"] = sync_client(settings.project_id)
            _deps["publisher"] = SyncPublisher(settings.nats, name="edge")
        return _deps["db"], _deps["publisher"]


@firestore_fn.on_document_created(document="users/{uid}/paymentRequests/{requestId}", secrets=["FJB_NATS_PASSWORD"])
def on_payment_request(event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None]) -> None:
    if event.data is None:
        return
    db, publisher = deps()
    edge.handle_payment_request(
        db, publisher, uid=event.params["uid"], request_id=event.params["requestId"], body=event.data.to_dict() or {}
    )
