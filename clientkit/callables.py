"""The app's callables through the Functions emulator, as the Firebase SDK calls them.

Each call carries the user's ID token (Authorization) and an App Check token
(X-Firebase-AppCheck). Two ways to call:

* `call`: what an app or a tool does: the result, or the refusal as `Refused` with the
  bank's reason code, a server failure (5xx) as `StackUnreachable`; a "busy" answer is
  tried again a few times (`clientkit.http`).
* `send`: one request and its answer as it came (status and body), with any App Check
  token or none: what a test of the refusals looks at.
"""

from __future__ import annotations

from typing import Any

import requests

from clientkit.app_check import AppCheck
from clientkit.auth import Identity
from clientkit.endpoints import Endpoints
from clientkit.errors import FUNCTIONS, KitError, Refused
from clientkit.http import Answer, Http

KIT_TOKEN: Any = object()  # send's default App Check token: the kit's own (None: send none)


class Callables:
    def __init__(
        self, endpoints: Endpoints, app_check: AppCheck | None, session: requests.Session | None = None
    ) -> None:
        self.base = endpoints.functions_base
        self.app_check = app_check
        self.http = Http(FUNCTIONS, endpoints.functions_host, endpoints.http_timeout, session)

    def headers(self, id_token: str | None, app_check: str | None = KIT_TOKEN) -> dict[str, str]:
        """What the SDK sends: the ID token and the App Check token, each if there is one."""
        headers = {"Content-Type": "application/json"}
        if id_token:
            headers["Authorization"] = f"Bearer {id_token}"
        token = (self.app_check.token() if self.app_check else None) if app_check is KIT_TOKEN else app_check
        if token:
            headers["X-Firebase-AppCheck"] = token
        return headers

    def send(
        self,
        name: str,
        data: Any,
        id_token: str | None,
        *,
        app_check: str | None = KIT_TOKEN,
        timeout: float | None = None,
    ) -> Answer:
        """One call of ``name`` and its answer, whatever it is (no try again)."""
        return self.http.send(f"{self.base}/{name}", {"data": data}, self.headers(id_token, app_check), timeout=timeout)

    def call(self, name: str, data: Any, caller: Identity | str) -> Any:
        """The result of ``name`` called by ``caller`` (an identity or its ID token)."""
        id_token = caller.id_token if isinstance(caller, Identity) else caller
        answer = self.http.post(f"{self.base}/{name}", {"data": data}, self.headers(id_token))
        return self.result(name, answer)

    def result(self, name: str, answer: Answer) -> Any:
        """The answer's result, or the error it is."""
        if answer.status >= 500:
            raise self.http.failed(answer, name)
        if answer.data is None:
            raise KitError(f"{name}: HTTP {answer.status} without an answer (does the function exist?)")
        if "error" in answer.data:
            raise Refused(name, answer.reason, answer.error.get("message", "") + answer.tried)
        return answer.data.get("result", {})
