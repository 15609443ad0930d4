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


# Apple's verifier parses each token three times in a row (unverified header, unverified claims, then
# verified): the parse (base64 of a header carrying three certificates, JSON) is a pure function of the
# token's bytes, so the last few results are remembered by those exact bytes. Only the parse: the
# signature is still checked on every call, against the key of a chain that was verified.
_LOADED: dict[bytes, tuple[bytes, bytes, dict, bytes]] = {}
_LOADED_MAX = 32


def _memo_load(original):
    def _load(self, token):
        key = token.encode("utf-8") if isinstance(token, str) else token
        hit = _LOADED.get(key) if isinstance(key, bytes) else None
        if hit is None:
            hit = original(self, token)  # raises DecodeError on a malformed token: nothing is remembered
            if isinstance(key, bytes):
                if len(_LOADED) >= _LOADED_MAX:
                    _LOADED.clear()
                _LOADED[key] = hit
        payload, signing_input, header, signature = hit
        # A fresh header dict for every caller (PyJWT reads it; nobody may change what is remembered).
        header = {k: (list(v) if isinstance(v, list) else v) for k, v in header.items()}
        return payload, signing_input, header, signature

    _load.__wrapped__ = original
    return _load


def install() -> bool:
    if jwt.__version__ not in PATCHED_VERSIONS or not hasattr(api_jws.PyJWS, "_decode_base64url_segment"):
        return False
    api_jws.PyJWS._decode_base64url_segment = staticmethod(_decode_base64url_segment)
    if not hasattr(api_jws.PyJWS._load, "__wrapped__"):
        api_jws.PyJWS._load = _memo_load(api_jws.PyJWS._load)
    return True


INSTALLED = install()
