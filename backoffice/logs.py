"""Structured logs: one JSON object a line, with the request id of the HTTP request that caused it.

The request id (monetization.middleware: the caller's X-Request-ID or a fresh one) travels with
every Celery task the request queues (a message header, set when published) and is set again while
the task runs, so the task's log lines and the audit events it writes carry the same id as the
request's. The customer's external id is added where the code logs one (``extra={"customer": ...}``).
A field whose name says secret (password, token, key, secret, authorization, card, cvc, iban) is
written as ``"[redacted]"``, whatever the caller passed.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from celery.signals import before_task_publish, task_postrun, task_prerun

from monetization.middleware import request_id_var

# The attributes every LogRecord has; anything else on a record is a caller's extra field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
SECRET_NAMES = re.compile(r"pass|secret|token|key|authori|card|cvc|cvv|iban|pan\b", re.IGNORECASE)
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get() or None,
            "process": record.process,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = REDACTED if SECRET_NAMES.search(name) else value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


@before_task_publish.connect
def _carry_request_id(headers=None, **kwargs) -> None:
    rid = request_id_var.get()
    if headers is not None and rid:
        headers.setdefault("request_id", rid)


_tokens: dict[str, object] = {}


@task_prerun.connect
def _set_request_id(task_id=None, task=None, **kwargs) -> None:
    if task is None or task.request.is_eager:
        return  # inline, in the caller's context: its id is already set
    rid = getattr(task.request, "request_id", None) or (task.request.headers or {}).get("request_id")
    _tokens[task_id] = request_id_var.set(rid or "")


@task_postrun.connect
def _reset_request_id(task_id=None, **kwargs) -> None:
    token = _tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)
