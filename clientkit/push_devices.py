"""The app's push registration: a device's FCM token in the customer's notification settings.

``users/{uid}/settings/notifications`` holds the preferences by kind and ``{"devices":
{deviceId: {"token", "platform"}}, "changed": deviceId}``; each write of a device adds,
replaces or removes one and names it in ``changed``, leaving the preferences as they are
(firestore.rules). The push function reads the one document per customer
(fjordbank/service_layer/push.py). The web app does the same with the Firebase JS SDK
(web/src/push.js).
"""

from __future__ import annotations

import requests

from clientkit.rest import FirestoreAsUser
from fjordbank.service_layer.push import settings_path

__all__ = ["register", "remove", "settings_path"]


def _mask(device_id: str) -> list[str]:
    return [f"devices.`{device_id}`", "changed"]


def register(app: FirestoreAsUser, uid: str, device_id: str, token: str, platform: str) -> requests.Response:
    """Add (or replace) one device of the signed-in customer ``uid``."""
    fields = {"devices": {device_id: {"token": token, "platform": platform}}, "changed": device_id}
    return app.merge(settings_path(uid), fields, _mask(device_id))


def remove(app: FirestoreAsUser, uid: str, device_id: str) -> requests.Response:
    """Remove one device (the app signs out there)."""
    return app.merge(settings_path(uid), {"changed": device_id}, _mask(device_id))
