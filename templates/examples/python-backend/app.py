"""A backend app in Python for uproxy's host runtime: the standard library only.

uproxy starts it with the command and environment in uproxy.json (see README.md here), which
give it the address to listen on and its name. It answers every path with a small page naming
itself, and /health with "ok", which is what the proxy's health check asks for by default.
"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("BACKEND_NAME", "python-backend")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.split("?")[0] == "/health":
            body = b"ok\n"
        else:
            body = f"<h1>Hello from {NAME}</h1>\n<p>Served by Python.</p>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print(f"{NAME}: {self.address_string()} {format % args}", flush=True)


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ["PORT"])
    print(f"{NAME}: listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, port), Handler).serve_forever()
