"""firebase_admin's app for an adapter, made on first use (`LazyApp`).

firebase_admin is imported only then, so the adapters import (and construct) without
credentials. The app is ours, under one name for the whole process (`FIREBASE_APP_NAME`),
unless the process made one already: ours, or the default app (the functions make it at
import), which is then used as it is, so that nobody's later ``initialize_app()`` of the
default app collides with ours.
"""

from __future__ import annotations

import threading
from typing import Any

FIREBASE_APP_NAME = "fjordbank"
_making = threading.Lock()  # one process-wide: the app's name is the whole process's


class LazyApp:
    def __init__(self, project_id: str, *, app: Any = None) -> None:
        self.project_id = project_id
        self._app = app

    def get(self) -> Any:
        if self._app is not None:
            return self._app
        import firebase_admin

        with _making:
            if self._app is None:
                # application default credentials
                self._app = existing_app(firebase_admin) or firebase_admin.initialize_app(
                    options={"projectId": self.project_id}, name=FIREBASE_APP_NAME
                )
            return self._app


def existing_app(firebase_admin: Any) -> Any:
    """Our app if made already, else the default app if someone initialized it, else None."""
    for args in ((FIREBASE_APP_NAME,), ()):
        try:
            return firebase_admin.get_app(*args)
        except ValueError:
            continue
    return None
