"""Structured JSON logs on stdout, one object per line (Cloud Logging reads them as is),
with account, identity and card numbers masked (fjordbank.runtime.redact).

A line logged inside a span carries ``trace_id`` and ``span_id`` (and, exporting to Cloud
Trace, Cloud Logging's ``logging.googleapis.com/trace``, ``.../spanId`` and
``.../trace_sampled``): fjordbank.runtime.tracing puts them on every log record, and this
formatter prints a record's extra attributes as they are."""

from __future__ import annotations

import json
import logging
import sys
import time

from fjordbank.runtime.redact import redact

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def setup(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # nats-py logs every TLS EOF at warning level from asyncio; keep ours readable
    logging.getLogger("asyncio").setLevel(logging.ERROR)
