"""A real HTTP server standing in for a Backstage backend's auth surface: a plugin's JWKS (with key rotation),
the auth backend's JWKS that signs limited user tokens (`obo`), and the catalog's User entities with their
`memberOf` relations (read with a catalog token, as Golden Path does)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class BackstageKeys:
    def __init__(self, catalog_token: str = "catalog-reader-token") -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        self.rotate()
        self.auth_key = ec.generate_private_key(ec.SECP256R1())
        self.catalog_token = catalog_token
        self.members: dict[str, list[str]] = {}  # user ref -> group refs (memberOf)
        self.user_reads = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()  # quick shutdown

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

    def user_token(self, user: str, *, ttl: int = 3600, key: ec.EllipticCurvePrivateKey | None = None,
                   typ: str = "vnd.backstage.limited-user", **claims: Any) -> str:
        """A limited user token as the auth backend signs it (the `obo` of a plugin token)."""
        now = int(time.time())
        payload = {"sub": user, "iat": now, "exp": now + ttl, **claims}
        return jwt.encode(payload, key or self.auth_key, algorithm="ES256", headers={"typ": typ, "kid": "auth-1"})

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
                if self.path == "/api/auth/.well-known/jwks.json":
                    jwk = json.loads(ECAlgorithm.to_jwk(outer.auth_key.public_key()))
                    self._send({"keys": [{**jwk, "kid": "auth-1", "alg": "ES256", "use": "sig"}]})
                    return
                prefix = "/api/catalog/entities/by-name/user/"
                if self.path.startswith(prefix):
                    self._user(self.path.removeprefix(prefix))
                    return
                if not re.fullmatch(r"/api/[a-z0-9-]+/\.backstage/auth/v1/jwks\.json", self.path):
                    self.send_error(404)
                    return
                outer.fetches += 1
                self._send(outer._jwks())

            def _user(self, rest: str) -> None:
                if self.headers.get("Authorization") != f"Bearer {outer.catalog_token}":
                    self._send({"error": {"name": "AuthenticationError", "message": "bad token"}}, 401)
                    return
                outer.user_reads += 1
                namespace, _, name = rest.partition("/")
                ref = f"user:{namespace}/{name}"
                if ref not in outer.members:
                    self._send({"error": {"name": "NotFoundError", "message": f"{ref} not found"}}, 404)
                    return
                relations = [{"type": "memberOf", "targetRef": group} for group in outer.members[ref]]
                self._send({"kind": "User", "metadata": {"name": name, "namespace": namespace},
                            "relations": [*relations, {"type": "ownerOf", "targetRef": "component:default/x"}]})

            def _send(self, data: dict[str, Any], status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler
