"""The remote tier through the library, against a fake hosted provider on loopback that
counts TCP connections: zero before consent, answers after a grant, zero for sensitive
requests, zero after revocation and after expiry; and the ledger matches what it saw."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localinfer.backends.base import Backend
from localinfer.client import AsyncClient, Client
from localinfer.consent import ConsentStore
from localinfer.errors import (
    BackendError,
    ConsentRequired,
    LocalInferError,
    SensitiveDataBlocked,
)
from localinfer.ledger import EgressLedger
from localinfer.remote import (
    ConsentedRemoteTier,
    ConsentQuestion,
    ProviderStore,
    RemoteProvider,
)
from localinfer.settings import Settings
from localinfer.types import ChatResponse
from tests.fake_backend import FakeBackend, Script
from tests.support.clock import ManualClock
from tests.support.remote_provider import KEY, KEY_ENV, MODEL, FakeRemoteProvider, remote_provider

__all__ = ["remote_provider"]  # the fixture, used by name

NAME = "cloud"
Remote = tuple[FakeRemoteProvider, str]


def record_and_allow(asked: list[Any], question: Any) -> bool:
    """An on_consent callback that notes the question and says yes."""
    asked.append(question)
    return True


@pytest.fixture
def home(tmp_path: Path, remote_provider: Remote, monkeypatch: pytest.MonkeyPatch) -> Path:
    _, base = remote_provider
    monkeypatch.setenv(KEY_ENV, KEY)
    ProviderStore(tmp_path).add(RemoteProvider.checked(NAME, base, KEY_ENV, [MODEL,
                                                                             "remote-embed"]))
    return tmp_path


def settings(home: Path) -> Settings:
    return Settings(home=home, scan_default_ports=False, servers=[], embedded=False)


def factory(backend: Backend) -> Callable[[], Any]:
    async def make() -> Backend:
        return backend
    return make


def local_fake(fail: bool = False) -> FakeBackend:
    fake = FakeBackend("embedded", tier="embedded", model_ids=("smollm2",))
    return fake.enqueue(Script(fail_before=fail))


@pytest.fixture
def grant(home: Path, remote_provider: Remote) -> Callable[..., None]:
    def do(duration: float | None = None, store: ConsentStore | None = None) -> None:
        (store or ConsentStore(home)).grant(NAME, remote_provider[1], duration=duration)
    return do


async def test_without_consent_zero_connections(home: Path, remote_provider: Remote) -> None:
    fake, _ = remote_provider
    async with AsyncClient(settings(home), embedded=[]) as client:
        # Listing what exists comes from configuration, never from the provider.
        assert [m.id for m in await client.models()] == [MODEL, "remote-embed"]
        status = await client.status()
        assert [m["id"] for m in status["remote"]] == [MODEL, "remote-embed"]
        for model in (None, MODEL):
            with pytest.raises(ConsentRequired) as info:
                await client.chat("hello", model=model)
            assert f"localinfer consent grant {NAME}" in info.value.message
            assert info.value.exit_code == 6
        stream = await client.chat("hello", stream=True)
        with pytest.raises(ConsentRequired):
            [c async for c in stream]
        with pytest.raises(ConsentRequired):
            await client.embed(["a text"], model="remote-embed")
    assert fake.connections == 0


async def test_after_grant_it_answers(home: Path, remote_provider: Remote,
                                      grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[]) as client:
        reply = await client.chat("hello there", model=MODEL)
        assert isinstance(reply, ChatResponse)
        assert (reply.text, reply.backend, reply.tier) == ("remote: hello there", NAME, "remote")
        stream = await client.chat("streamed", stream=True)  # unnamed: the first remote model
        chunks = [c async for c in stream]
        assert "".join(c.text for c in chunks) == "remote: streamed"
        assert {c.tier for c in chunks} == {"remote"}
        vectors = (await client.embed(["a", "b"], model="remote-embed")).vectors
        assert len(vectors) == 2
    assert fake.connections >= 1 and fake.refused_keys == 0
    assert fake.prompts == ["hello there", "streamed"]


async def test_local_first_even_with_a_grant(home: Path, remote_provider: Remote,
                                             grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    grant()
    asked: list[ConsentQuestion] = []
    local = local_fake()
    async with AsyncClient(settings(home), embedded=[factory(local)],
                           on_consent=functools.partial(record_and_allow, asked)) as client:
        reply = await client.chat("hi")
        assert reply.tier == "embedded"
    assert fake.connections == 0 and asked == []


async def test_remote_is_the_fallback_when_local_fails(home: Path, remote_provider: Remote,
                                                       grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[factory(local_fake(fail=True))]) as client:
        reply = await client.chat("hi")
        assert reply.tier == "remote"
    assert fake.prompts == ["hi"]


async def test_sensitive_never_goes_remote(home: Path, remote_provider: Remote,
                                           grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[],
                           on_consent=lambda q: True) as client:
        with pytest.raises(SensitiveDataBlocked):
            await client.chat("my diagnosis", sensitive=True)
        with pytest.raises(SensitiveDataBlocked):
            await client.chat("my diagnosis", model=MODEL, sensitive=True)
        stream = await client.chat("my diagnosis", stream=True, sensitive=True)
        with pytest.raises(SensitiveDataBlocked):
            [c async for c in stream]
        with pytest.raises(LocalInferError):
            await client.embed(["my diagnosis"], model="remote-embed", sensitive=True)
    # A local tier that fails does not hand a sensitive request over to the remote one.
    async with AsyncClient(settings(home), embedded=[factory(local_fake(fail=True))]) as client:
        with pytest.raises(BackendError):
            await client.chat("my diagnosis", sensitive=True)
    assert fake.connections == 0 and fake.prompts == []


async def test_revocation_takes_effect_at_once(home: Path, remote_provider: Remote,
                                               grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[]) as client:
        await client.chat("one", model=MODEL)
        seen = (fake.connections, len(fake.requests))
        assert ConsentStore(home).revoke(NAME)  # as `consent revoke` in another process
        with pytest.raises(ConsentRequired, match="no consent grant"):
            await client.chat("two", model=MODEL)
    assert (fake.connections, len(fake.requests)) == seen
    assert fake.prompts == ["one"]


async def test_expiry(home: Path, remote_provider: Remote, grant: Callable[..., None]) -> None:
    fake, _ = remote_provider
    clock = ManualClock(2_000_000_000.0)
    store = ConsentStore(home, clock=clock)
    grant(duration=3600, store=store)
    s = settings(home)
    async with AsyncClient(s, embedded=[]) as client:
        client.router.remote = ConsentedRemoteTier(s, client.policy, consent=store)
        await client.chat("before", model=MODEL)
        seen = (fake.connections, len(fake.requests))
        clock.now += 3600
        with pytest.raises(ConsentRequired, match="expired"):
            await client.chat("after", model=MODEL)
        await client.router.remote.aclose()  # type: ignore[attr-defined]
    assert (fake.connections, len(fake.requests)) == seen


async def test_on_consent_callback(home: Path, remote_provider: Remote) -> None:
    fake, base = remote_provider
    questions: list[ConsentQuestion] = []
    answer = False

    async def ask(question: ConsentQuestion) -> bool:  # async callbacks work too
        questions.append(question)
        return answer

    async with AsyncClient(settings(home), embedded=[], on_consent=ask) as client:
        with pytest.raises(ConsentRequired, match="declined"):
            await client.chat("secret-ish", model=MODEL)
        assert fake.connections == 0
        answer = True
        reply = await client.chat("fine to send", model=MODEL)
        assert reply.text == "remote: fine to send"
    q = questions[0]
    assert (q.provider, q.base_url, q.model, q.purpose, q.items) == (NAME, base, MODEL, "chat", 1)
    assert q.characters >= len("secret-ish") and NAME in q.summary and base in q.summary
    assert not (home / "consent.json").exists()  # a callback's yes is not persisted


async def test_grant_for_another_url_does_not_count(home: Path, remote_provider: Remote) -> None:
    fake, _ = remote_provider
    ConsentStore(home).grant(NAME, "https://api.example.com/v1")
    async with AsyncClient(settings(home), embedded=[]) as client:
        with pytest.raises(ConsentRequired, match="points elsewhere"):
            await client.chat("hi", model=MODEL)
    assert fake.connections == 0


async def test_missing_key_is_one_clear_error(home: Path, remote_provider: Remote,
                                              grant: Callable[..., None],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = remote_provider
    grant()
    monkeypatch.delenv(KEY_ENV)
    async with AsyncClient(settings(home), embedded=[]) as client:
        with pytest.raises(BackendError, match=f"{KEY_ENV} is not set"):
            await client.chat("hi", model=MODEL)
    assert fake.connections == 0


async def test_key_is_read_at_request_time(home: Path, remote_provider: Remote,
                                           grant: Callable[..., None],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[]) as client:
        monkeypatch.setenv(KEY_ENV, "sk-wrong")
        with pytest.raises(BackendError, match="401"):
            await client.chat("hi", model=MODEL)
        monkeypatch.setenv(KEY_ENV, KEY)
        assert (await client.chat("hi", model=MODEL)).text == "remote: hi"
    assert fake.refused_keys == 1


async def test_granted_provider_is_tried_before_an_ungranted_one(
        home: Path, grant: Callable[..., None]) -> None:
    # "aaa" sorts first but has no grant; it must not stop the granted one.
    ProviderStore(home).add(RemoteProvider.checked("aaa", "https://api.example.com/v1",
                                                   KEY_ENV, [MODEL]))
    grant()
    async with AsyncClient(settings(home), embedded=[]) as client:
        reply = await client.chat("hi", model=MODEL)
        assert reply.backend == NAME


async def test_ledger_matches_what_the_provider_saw(home: Path, remote_provider: Remote,
                                                    grant: Callable[..., None]) -> None:
    fake, base = remote_provider
    grant()
    async with AsyncClient(settings(home), embedded=[]) as client:
        await client.chat("first", model=MODEL)
        [c async for c in await client.chat("second", model=MODEL, stream=True)]
        await client.embed(["third"], model="remote-embed")
    ledger = EgressLedger.for_home(home)
    remote = [r for r in ledger.records() if r.tier == "remote"]
    # As sets of exchanges: the fake notes a stream once its app has returned, which may
    # be after the next request (the client stops reading at [DONE]).
    assert sorted((r.path, r.bytes_sent, r.bytes_received) for r in remote) == sorted(
        zip(fake.paths, fake.bodies_in, fake.bodies_out, strict=True))
    assert len(remote) == 3
    assert all(r.status == 200 and r.host == "127.0.0.1" for r in remote)
    [dest] = ledger.report().destinations
    port = int(base.rsplit(":", 1)[1].split("/")[0])
    assert (dest.host, dest.port, dest.tier, dest.requests) == ("127.0.0.1", port, "remote", 3)
    assert (dest.bytes_sent, dest.bytes_received) == (sum(fake.bodies_in), sum(fake.bodies_out))
    ledger.close()
    raw = (home / "egress.sqlite3").read_bytes()
    assert KEY.encode() not in raw and b"first" not in raw


def test_sync_client_passes_on_consent(home: Path, remote_provider: Remote) -> None:
    fake, _ = remote_provider
    asked: list[str] = []
    with Client(settings(home), embedded=[],
                on_consent=lambda q: record_and_allow(asked, q.provider)) as client:
        assert client.chat("hi", model=MODEL).text == "remote: hi"
    assert asked == [NAME] and fake.connections >= 1


def test_config_toml_providers(tmp_path: Path) -> None:
    store = ProviderStore(tmp_path, {"corp": {"base_url": "https://llm.corp.example/v1/",
                                              "key_env": "CORP_KEY", "models": ["m1"]}})
    [corp] = store.all()
    assert (corp.base_url, corp.source, corp.models) == ("https://llm.corp.example/v1",
                                                         "config.toml", ["m1"])
    with pytest.raises(LocalInferError, match=r"config\.toml"):
        store.remove("corp")


@pytest.mark.parametrize(("args", "message"), [
    (("bad name", "https://x.example/v1", "K"), "bad provider name"),
    (("ok", "ftp://x.example", "K"), "bad base URL"),
    (("ok", "https://x.example/v1?key=1", "K"), "no query"),
    (("ok", "https://user:pw@x.example/v1", "K"), "credentials"),
    (("ok", "https://x.example/v1", "sk-abc123"), "bad --key-env"),
])
def test_provider_validation(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(LocalInferError, match=message):
        RemoteProvider.checked(*args)


def test_model_ids_are_cleaned() -> None:
    provider = RemoteProvider.checked("p", "https://x.example/v1/", "K", ["a", "a", " b ", ""])
    assert (provider.models, provider.base_url) == (["a", "b"], "https://x.example/v1")


async def test_the_provider_list_is_read_once_per_version_of_the_file(tmp_path: Path) -> None:
    # Every request asks the remote tier: it reuses its list until remotes.json changes.
    settings = Settings(home=tmp_path, remotes={"corp": {
        "base_url": "https://llm.corp.example/v1", "key_env": "CORP_KEY", "models": ["m1"]}})
    tier = ConsentedRemoteTier(settings, EgressLedger.from_settings(settings).policy(settings))
    first = tier.providers.current()
    assert tier.providers.current() is first
    assert [m.id for m in await tier.models()] == ["m1"]
    tier.providers.add(RemoteProvider.checked("other", "https://x.example/v1", "K", ["m2"]))
    assert [p.name for p in tier.providers.current()] == ["corp", "other"]
    assert sorted(m.id for m in await tier.models()) == ["m1", "m2"]
    assert tier.providers.remove("other")
    assert [m.id for m in await tier.models()] == ["m1"]
