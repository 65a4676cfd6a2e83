import threading
from http.server import HTTPServer
from urllib.request import urlopen

from app.__main__ import Handler


def test_healthz_answers_ok() -> None:
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urlopen(f"http://127.0.0.1:{server.server_address[1]}/healthz") as response:
            assert response.read() == b"ok"
    finally:
        server.shutdown()
