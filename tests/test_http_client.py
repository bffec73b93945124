"""The one HTTP client through its one seam: a test transport stands in for the network
and everything above it — egress check and record, the size cap, status and wire errors,
SSE reading, the backend's parsing — is the production path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import httpx
import pytest

from localinfer.backends.openai_http import OpenAIHTTPBackend
from localinfer.backends.passthrough import wire_bytes
from localinfer.errors import BackendError, EgressBlocked, StreamTruncated, UpstreamRejected
from localinfer.http import EgressPolicy, EgressRecord
from localinfer.types import ChatRequest
from tests.support.transport import mock_transport

REPLY = {"id": "r1", "object": "chat.completion", "created": 1, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                      "finish_reason": "stop"}]}
ASK = ChatRequest(messages=[{"role": "user", "content": "hello"}])


def chunk(text: str, finish: str | None = None) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def backend(handler: object, records: list[EgressRecord] | None = None, **kw: object
            ) -> OpenAIHTTPBackend:
    policy = EgressPolicy(recorders=[records.append] if records is not None else [])
    return OpenAIHTTPBackend(name="srv", kind="llama.cpp", tier="local",
                             api_base="http://127.0.0.1:9/v1", policy=policy,
                             transport=mock_transport(handler), **kw)  # type: ignore[arg-type]


async def test_a_reply_keeps_its_bytes_and_the_exchange_is_recorded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=json.dumps(REPLY).encode())

    records: list[EgressRecord] = []
    srv = backend(handler, records)
    reply = await srv.chat(ASK, "m")
    await srv.aclose()
    assert reply.text == "hi" and wire_bytes(reply) == json.dumps(REPLY).encode()
    [request] = seen
    assert request.url.path == "/v1/chat/completions"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["model"] == "m"
    [rec] = records
    assert (rec.method, rec.path, rec.status, rec.error) == (
        "POST", "/v1/chat/completions", 200, None)
    assert (rec.bytes_sent, rec.bytes_received) == (len(request.content),
                                                    len(json.dumps(REPLY)))


async def test_statuses_and_wire_failures_map_through_one_table() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "bad grammar"}})

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamRejected, match="bad grammar"):
        await backend(refused).chat(ASK, "m")
    records: list[EgressRecord] = []
    with pytest.raises(BackendError, match="is the server running"):
        await backend(down, records).chat(ASK, "m")
    assert [(r.status, r.error) for r in records] == [(None, "ConnectError")]


async def test_an_answer_past_the_cap_is_cut_off() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 4096)

    with pytest.raises(BackendError, match="max_response_bytes"):
        await backend(huge, max_response_bytes=1024).chat(ASK, "m")


async def test_a_stream_is_read_as_sse_and_a_cut_is_an_error() -> None:
    def whole(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunk("a") + chunk("b", "stop") + b"data: [DONE]\n\n")

    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunk("a"))

    got = [c async for c in backend(whole).stream_chat(ASK, "m")]
    assert "".join(c.text for c in got) == "ab" and all(wire_bytes(c) for c in got)
    with pytest.raises(StreamTruncated):
        [c async for c in backend(cut).stream_chat(ASK, "m")]


async def test_offline_refuses_before_the_transport_is_asked() -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json=REPLY)

    srv = OpenAIHTTPBackend(name="far", kind="openai", tier="remote",
                            api_base="https://api.example.com/v1",
                            policy=EgressPolicy(offline=True), transport=mock_transport(handler))
    # The backend's failure (so the router fails over), saying why.
    with pytest.raises(BackendError, match="offline mode") as info:
        await srv.chat(ASK, "m")
    assert isinstance(info.value.__cause__, EgressBlocked) and asked == []


async def test_a_model_list_the_backend_asks_itself_is_reused_then_asked_again() -> None:
    asked: list[str] = []
    fail = False

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if fail:
            return httpx.Response(500, json={"error": "sick"})
        return httpx.Response(200, json={"data": [{"id": "m1"}]})

    srv = backend(handler)
    assert [m.id for m in await srv.models()] == ["m1"]
    assert [m.id for m in await srv.models()] == ["m1"]
    assert asked == ["/v1/models"]  # once within LISTING_TTL
    srv._listed = (srv._listed[0] - 60, srv._listed[1]) if srv._listed else None
    fail = True
    with pytest.raises(BackendError):
        await srv.models()
    fail = False
    assert [m.id for m in await srv.models()] == ["m1"]  # a failure is not kept
    assert asked == ["/v1/models"] * 3


def test_a_downed_loopback_is_named_not_taken_for_a_stopped_server() -> None:
    import errno
    from types import SimpleNamespace

    import aiohttp

    from localinfer.http import backend_error
    from localinfer.http.transport import converted

    key = SimpleNamespace(host="127.0.0.1", port=9, ssl=False)
    down = aiohttp.ClientConnectorError(key, OSError(errno.ENETUNREACH, "unreachable"))  # type: ignore[arg-type]
    refused = aiohttp.ClientConnectorError(key, OSError(errno.ECONNREFUSED, "refused"))  # type: ignore[arg-type]
    said = [backend_error(converted(e), "embedded", "http://127.0.0.1:9/v1").message  # type: ignore[arg-type]
            for e in (down, refused)]
    assert "loopback interface is down" in said[0] and "ip link set lo up" in said[0]
    assert "is the server running?" in said[1]


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_inside_plain_unshare_n_the_error_says_to_bring_loopback_up() -> None:
    # A namespace made with plain `unshare -n` has its loopback down: the engine on
    # 127.0.0.1 cannot be reached, and the error has to say why.
    script = ("import asyncio\n"
              "from localinfer.http import EgressPolicy, backend_error, make_client\n"
              "async def main():\n"
              "    client = make_client(EgressPolicy(), tier='embedded')\n"
              "    try:\n"
              "        await client.get('http://127.0.0.1:9/v1/models')\n"
              "    except Exception as exc:\n"
              "        print(backend_error(exc, 'embedded', 'http://127.0.0.1:9/v1').message)\n"
              "    finally:\n"
              "        await client.aclose()\n"
              "asyncio.run(main())\n")
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot create a network namespace here: {done.stderr.strip()[:200]}")
    assert "ip link set lo up" in done.stdout, done.stdout + done.stderr
