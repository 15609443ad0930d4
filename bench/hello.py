"""A bare WSGI "hello": the ceiling one gunicorn worker setup reaches on this machine, served
beside the entitlement endpoint in the same run (bench/bench_entitlements.py) for its ratio.

``/hello/redis`` answers with a value read from Redis in one ``GET``: the ceiling of any request
that makes one Redis round trip (as an entitlement hit does), no Django and no checks."""

import os

REDIS_BODY_KEY = "bench:hello:body"
_redis = []  # one client per worker process, made after the fork


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/hello/redis":
        return _from_redis(start_response)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def _from_redis(start_response):
    if not _redis:
        import redis

        _redis.append(redis.Redis.from_url(os.environ["REDIS_URL"]))
    body = _redis[0].get(REDIS_BODY_KEY) or b""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
