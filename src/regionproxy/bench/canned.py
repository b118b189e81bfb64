"""A near-free DynamoDB endpoint: canned JSON answers, nothing stored.

Run it in another process (``python -m regionproxy.bench.canned PORT``) and
point clients at it: what is left of a call's time is the client side
(botocore's serialisation, signing, parsing, and our routing), which is
what an overhead benchmark must expose.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEM = {"pk": {"S": "bench"}, "sk": {"S": "item"}, "payload": {"S": "x" * 200}, "n": {"N": "42"}}
ANSWERS = {
    "GetItem": {"Item": ITEM},
    "PutItem": {},
    "UpdateItem": {},
    "DeleteItem": {},
    "Query": {"Items": [ITEM] * 5, "Count": 5, "ScannedCount": 5},
    "Scan": {"Items": [ITEM] * 5, "Count": 5, "ScannedCount": 5},
    "DescribeTable": {
        "Table": {
            "TableName": "Bench",
            "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        }
    },
}
BODIES = {operation: json.dumps(answer).encode() for operation, answer in ANSWERS.items()}


class CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB does
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = BODIES.get(operation)
        status = 200
        if body is None:
            status = 400
            body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException"}).encode()
        # One write for head and body: two small writes meet Nagle's
        # algorithm and the client's delayed ACK, a 40 ms stall per call.
        head = (
            f"HTTP/1.1 {status} OK\r\n"
            "Content-Type: application/x-amz-json-1.0\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Quiet: a benchmark's stderr is for figures."""


def serve(port: int, host: str = "127.0.0.1") -> None:
    with ThreadingHTTPServer((host, port), CannedHandler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
