"""Python peer for the cold-start benchmark: what a Python Azure Function's worker would load
for the same job (the Azure identity and Key Vault clients and requests), then an HTTP server
answering GET / on FUNCTIONS_CUSTOMHANDLER_PORT -- the same readiness signal pat-rotator gives.

Run by bench/src/main.rs with the interop venv (scripts/setup-python.sh):
    FUNCTIONS_CUSTOMHANDLER_PORT=8081 .venv-interop/bin/python bench/python_peer.py
"""

import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import azure.identity  # noqa: F401  (the import cost is what is measured)
import azure.keyvault.secrets  # noqa: F401
import requests  # noqa: F401


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"python peer ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port = int(os.environ.get("FUNCTIONS_CUSTOMHANDLER_PORT", "8080"))
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
