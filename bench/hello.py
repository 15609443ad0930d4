"""A bare WSGI "hello": the ceiling one gunicorn worker setup reaches on this machine, served
beside the entitlement endpoint in the same run (bench/bench_entitlements.py) for its ratio."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]
