"""Where the bank's public surface is: the project, the emulators' addresses, the region.

The kit takes these from whoever uses it (bankctl's configuration, the dev stack's
settings, the tests' stack) and reads no environment of its own. `Endpoints.local` is the
dev stack's emulators on this machine, from its ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

REGION = "europe-west1"  # the functions' region (functions/main.py)
API_KEY = "fake-api-key"  # the Auth emulator accepts any key; the web app's config carries one


@dataclass(frozen=True)
class Endpoints:
    project_id: str
    auth_host: str  # host:port of the Auth emulator
    functions_host: str  # host:port of the Functions emulator
    firestore_host: str  # host:port of the Firestore emulator
    region: str = REGION
    http_timeout: float = 60.0  # seconds to wait for an answer over HTTP

    @classmethod
    def local(cls, project_id: str, emulator_ports: Mapping[str, int], **kw) -> Endpoints:
        """The dev stack's emulators on this machine."""
        return cls(
            project_id=project_id,
            auth_host=f"127.0.0.1:{emulator_ports['auth']}",
            functions_host=f"127.0.0.1:{emulator_ports['functions']}",
            firestore_host=f"127.0.0.1:{emulator_ports['firestore']}",
            **kw,
        )

    @property
    def functions_base(self) -> str:
        return f"http://{self.functions_host}/{self.project_id}/{self.region}"

    @property
    def documents_base(self) -> str:
        """The Firestore REST API's documents of the default database."""
        return f"http://{self.firestore_host}/v1/projects/{self.project_id}/databases/(default)/documents"
