"""A faster, equivalent base64url check for PyJWT 2.15.x.

PyJWT 2.15 rejects non-alphabet characters in a JWS segment (GHSA-hxm8-2xgr-2p9m)
with a Python generator over every byte. An App Store notification nests two
signed payloads and carries a three-certificate x5c header, and Apple's
library parses each token three times, so that loop is ~85% of the cost of
verifying a notification. ``bytes.translate(None, alphabet)`` deletes the
allowed bytes in C: anything left over is exactly what the loop rejects.
Applied only to the PyJWT version it was written against.
"""

from __future__ import annotations

import binascii

import jwt
from jwt import api_jws
from jwt.exceptions import DecodeError
from jwt.utils import base64url_decode, base64url_encode

PATCHED_VERSIONS = {"2.15.1"}


def _decode_base64url_segment(segment: bytes, name: str) -> bytes:
    padding = 0
    stripped = segment
    while stripped.endswith(b"="):
        stripped = stripped[:-1]
        padding += 1
        if padding > 2:
            raise DecodeError(f"Invalid {name} padding")
    if padding and len(segment) % 4 != 0:
        raise DecodeError(f"Invalid {name} padding")
    if len(stripped) % 4 == 1 or stripped.translate(None, api_jws._BASE64URL_ALPHABET):
        raise DecodeError(f"Invalid {name} padding")
    try:
        decoded = base64url_decode(stripped)
    except (TypeError, binascii.Error) as err:
        raise DecodeError(f"Invalid {name} padding") from err
    if base64url_encode(decoded) != stripped:
        raise DecodeError(f"Invalid {name} padding")
    return decoded


def install() -> bool:
    if jwt.__version__ not in PATCHED_VERSIONS or not hasattr(api_jws.PyJWS, "_decode_base64url_segment"):
        return False
    api_jws.PyJWS._decode_base64url_segment = staticmethod(_decode_base64url_segment)
    return True


INSTALLED = install()
