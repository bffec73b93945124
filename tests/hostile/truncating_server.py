"""A raw-socket server that plays an OpenAI-compatible server which dies mid-answer:
``/v1/models`` answers properly (so discovery lists it), a streamed chat sends one SSE
chunk and closes the connection, and a non-streamed chat sends its headers and half a
body, then closes. No HTTP library on the server side, so nothing tidies the cut up.
"""

from __future__ import annotations

import json
import socket
import threading

MODEL = "cut-model"
CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                      "finish_reason": None}]}


class TruncatingServer:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.chats = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TruncatingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                part = conn.recv(65536)
                if not part:
                    return
                data += part
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:])
                           if k.strip().lower() == "content-length"), 0)
            while len(body) < length:
                part = conn.recv(65536)
                if not part:
                    return
                body += part
            if method == "GET" and path == "/v1/models":
                payload = json.dumps({"object": "list", "data": [
                    {"id": MODEL, "object": "model", "owned_by": "me"}]}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(payload)).encode() +
                             b"\r\nconnection: close\r\n\r\n" + payload)
            elif method == "POST" and path == "/v1/chat/completions":
                self.chats += 1
                if json.loads(body or b"{}").get("stream"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"connection: close\r\n\r\n"
                                 b"data: " + json.dumps(CHUNK).encode() + b"\n\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                 b"content-length: 400\r\nconnection: close\r\n\r\n"
                                 b'{"id": "c1", "object": "chat.compl')
            else:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
