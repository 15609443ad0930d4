import contextvars
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def current_request_id() -> str:
    return request_id_var.get()


def request_id_for(incoming: str) -> str:
    """The id of a request: the caller's X-Request-ID (at most 64 characters) or a fresh one."""
    return incoming[:64] if incoming else uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each request an id (or keeps the caller's X-Request-ID) for logs and the audit trail."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = request_id_for(request.headers.get("X-Request-ID", ""))
        request.request_id = rid
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = rid
        return response
