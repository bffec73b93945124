"""Remote provider under hostile conditions: consent revoked mid-answer, a provider that
echoes the key back in its errors (hardening §6, §7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from localinfer.client import AsyncClient
from localinfer.consent import ConsentStore
from localinfer.errors import BackendError, ConsentRequired
from localinfer.redact import MASK, redact
from localinfer.remote import ProviderStore, RemoteProvider
from localinfer.settings import Settings
from tests.fakes.base import FakeModel
from tests.support.remote_provider import KEY, KEY_ENV, MODEL, FakeRemoteProvider, serve_remote

pytestmark = pytest.mark.hostile

NAME = "cloud"
CHUNKS = 200


class SlowProvider(FakeRemoteProvider):
    """Streams one word every 20 ms, and counts the words it managed to send."""

    sent_pieces: int = 0

    async def pieces(self, text: str) -> AsyncIterator[str]:
        for word in text.split():
            self.sent_pieces += 1
            yield word + " "
            await asyncio.sleep(0.02)


class EchoingProvider(FakeRemoteProvider):
    """Answers every chat with a 401 that repeats the Authorization header it got."""

    async def v1_chat(self, request: Request, body: object) -> Response:
        echoed = request.headers.get("authorization", "")
        return JSONResponse({"error": {"message": f"bad key {echoed} (key={KEY})",
                                       "type": "invalid_request_error"}}, status_code=401)


def provider_home(tmp_path: Path, fake: FakeRemoteProvider) -> Iterator[Path]:
    server = serve_remote(fake)
    try:
        ProviderStore(tmp_path).add(RemoteProvider.checked(
            NAME, server.base_url + "/v1", KEY_ENV, [MODEL]))
        ConsentStore(tmp_path).grant(NAME, server.base_url + "/v1")
        yield tmp_path
    finally:
        server.stop()


def settings(home: Path) -> Settings:
    return Settings(home=home, scan_default_ports=False, servers=[], embedded=False)


@pytest.fixture
def slow() -> SlowProvider:
    return SlowProvider(models=[FakeModel(MODEL)], reply_prefix="")


async def test_revoke_stops_an_open_stream(tmp_path: Path, slow: SlowProvider,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    for home in provider_home(tmp_path, slow):
        async with AsyncClient(settings(home), embedded=[]) as client:
            prompt = " ".join(f"w{i}" for i in range(CHUNKS))
            stream = await client.chat(prompt, model=MODEL, stream=True)
            received = 0
            with pytest.raises(ConsentRequired, match="revoked") as info:
                async for chunk in stream:
                    if chunk.text.strip():
                        received += 1
                    if received == 10:
                        assert ConsentStore(home).revoke(NAME)  # as `consent revoke` does
                        revoked_at = slow.sent_pieces
            assert info.value.exit_code == 6
            # Within one chunk of the revocation, nothing more reached the caller …
            assert received <= 11
        # … and the provider stopped being read: far fewer than all 200 words went out
        # (the few in flight were already in the socket's buffers).
        await asyncio.sleep(0.3)
        assert slow.sent_pieces < revoked_at + 40 < CHUNKS


async def test_revoke_while_the_provider_is_silent(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    class Silent(FakeRemoteProvider):
        async def pieces(self, text: str) -> AsyncIterator[str]:
            yield "first "
            await asyncio.sleep(30)  # says nothing more for a long time
            yield "late"

    monkeypatch.setenv(KEY_ENV, KEY)
    for home in provider_home(tmp_path, Silent(models=[FakeModel(MODEL)])):
        async with AsyncClient(settings(home), embedded=[]) as client:
            stream = await client.chat("hi", model=MODEL, stream=True)
            loop = asyncio.get_running_loop()
            with pytest.raises(ConsentRequired, match="revoked"):
                async for chunk in stream:
                    if "first" in chunk.text:
                        ConsentStore(home).revoke(NAME)
                        started = loop.time()
            # Ended by the consent check, not by the provider (which would take 30 s).
            assert loop.time() - started < 10


async def test_key_never_echoes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    for home in provider_home(tmp_path, EchoingProvider(models=[FakeModel(MODEL)])):
        async with AsyncClient(settings(home), embedded=[]) as client:
            with caplog.at_level(logging.DEBUG, logger="localinfer"), \
                    pytest.raises(BackendError) as info:
                await client.chat("hi", model=MODEL)
        assert "401" in info.value.message
        assert KEY not in info.value.message and KEY not in str(info.value)
        assert MASK in info.value.message
        assert KEY not in caplog.text
        ledger = (home / "egress.sqlite3").read_bytes()
        assert KEY.encode() not in ledger


@pytest.mark.parametrize(("text", "secret"), [
    ("401: bad key Bearer sk-abcdefghijklmnop", "sk-abcdefghijklmnop"),
    ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig", "eyJhbGciOi.eyJzdWIi.sig"),
    ('{"api_key": "abcd1234efgh"}', "abcd1234efgh"),
    ("token=ghp_0123456789abcdef", "ghp_0123456789abcdef"),
    ("plain sk-live-0123456789abc in text", "sk-live-0123456789abc"),
])
def test_bearer_shapes_are_redacted(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "the tokenizer splits words; Bearer of news"
    assert redact(text) == text


def test_cli_notices_from_child_loggers_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from localinfer.cli.main import _show_library_notices

    _show_library_notices()
    logging.getLogger("localinfer.consent").warning("provider said Bearer sk-abcdefghijklmnop")
    err = capsys.readouterr().err
    assert "sk-abcdefghijklmnop" not in err and MASK in err
