"""A real HTTP server publishing a JWKS the way a Backstage plugin does, with key rotation."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class BackstageKeys:
    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        self.rotate()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def rotate(self) -> str:
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.current = kid
        return kid

    def token(self, *, sub: str = "scaffolder", aud: str = "goldenpath", ttl: int = 3600, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": sub, "aud": aud, "iat": now, "exp": now + ttl, **claims}
        headers = {"typ": "vnd.backstage.plugin", "kid": self.current}
        return jwt.encode(payload, self.keys[self.current], algorithm="ES256", headers=headers)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "ES256", "use": "sig"})
        return {"keys": keys}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/api/scaffolder/.backstage/auth/v1/jwks.json":
                    self.send_error(404)
                    return
                outer.fetches += 1
                body = json.dumps(outer._jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler
