"""`localinfer status` and `localinfer models`: what runs here, and what it can serve."""

from __future__ import annotations

import argparse
from typing import Any

from .common import open_client, print_json, print_table, settings_from_args
from .remote import grant_state, stores


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="list local inference servers and tiers",
                       description="Probe this machine for inference servers and show every "
                       "tier: local servers, the embedded engine, remote providers.")
    p.add_argument("--json", action="store_true", help="machine-readable output (stable keys)")
    p.set_defaults(func=run_status)
    m = sub.add_parser("models", help="list every model across tiers")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=run_models)


def run_status(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        status = client.status(refresh=True)
    if args.json:
        print_json(status)
        return 0
    rows: list[tuple[str, ...]] = [("KIND", "BASE URL", "VERSION", "MODELS", "TOOLS",
                                    "LATENCY")]
    for s in status["servers"]:
        models = s["hint"] if s.get("needs_key") else ", ".join(
            model_label(m) for m in s["models"])
        rows.append((s["kind"], s["base_url"], s["version"] or "-", models or "-",
                     tools_label(s["models"]), f"{s.get('latency_ms', 0):.1f} ms"))
    if len(rows) == 1:
        print("No local inference server found.")
    else:
        print_table(rows)
    _print_hosts(status.get("hosts", []))
    for e in status.get("exposure", []):
        if e["exposed"] is True:
            print(f"Exposed: {e['message']} (`localinfer audit`)")
    embedded = status["embedded"]
    if not embedded["enabled"]:
        print("Embedded engine: off (LOCALINFER_EMBEDDED=off)")
    else:
        for m in embedded["models"]:
            print(f"Embedded: {m['id']} ({', '.join(m['capabilities'])})"
                  + (f" from {m['path']}" if m.get("path") else ""))
        if embedded.get("compute"):
            print(f"Embedded compute: {compute_line(embedded['compute'])}")
    providers, consent = stores(settings_from_args(args))
    if not providers.all():
        print("Remote: none configured")
    now = consent.clock()
    for provider in providers.all():
        state = grant_state(consent.get(provider.name), provider, now)
        print(f"Remote: {provider.name} ({', '.join(provider.models) or 'no models'}) "
              f"at {provider.base_url}, consent: {state}")
    return 0


def model_label(model: Any) -> str:
    """A model's id, marked when the server holds it on disk only (it loads on first
    use: llama-server's router mode, Ollama, LM Studio, Lemonade)."""
    if not isinstance(model, dict):
        return str(model)
    return f"{model['id']} (available)" if model.get("loaded") is False else str(model["id"])


# Whether a server passes `tools` on (llama-server: its chat template's caps in /props).
TOOLS_LABELS = {True: "yes", False: "no (template)", None: "?"}


def tools_label(models: list[Any]) -> str:
    told = {m.get("tools") for m in models if isinstance(m, dict)} or {None}
    return TOOLS_LABELS[told.pop()] if len(told) == 1 else "mixed"


def _print_hosts(hosts: list[dict[str, Any]]) -> None:
    if not hosts:
        return
    rows: list[tuple[str, ...]] = [("HOST", "URL", "TRUST", "SENSITIVE", "STATE", "BUSY",
                                    "LATENCY")]
    for h in hosts:
        latency = "-" if h["latency_ms"] is None else f"{h['latency_ms']:.0f} ms"
        state = h["state"] if h["found"] else "not found"
        if h["state"] != "up":
            state += f" (retry in {h['retry_in_s']:.0f} s)"
        rows.append((h["name"] or "-", h["url"], h["trust"] + (" (trusted)" if h["trusted"]
                                                               else ""),
                     "yes" if h["sensitive_ok"] else "no", state, str(h["outstanding"]),
                     latency))
    print_table(rows)


def run_models(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        models = client.models(refresh=True)
    if args.json:
        print_json({"models": [m.model_dump() for m in models]})
        return 0
    # Grouped by host (the backend that serves the model), in tier order.
    tiers = {"local": 0, "embedded": 1, "remote": 2}
    models = sorted(models, key=lambda m: (tiers.get(m.tier, 3), m.backend))
    rows: list[tuple[str, ...]] = [("HOST", "MODEL", "TIER", "CAN")]
    rows += [(m.backend, m.id, m.tier, ",".join(m.capabilities)) for m in models]
    print_table(rows)
    return 0


def compute_line(compute: dict[str, Any]) -> str:
    """The embedded engine's build, CPU features, threads and GPU offload, in one line."""
    gpu = compute["gpu_offload"]
    gpus = [d.get("description") or d.get("name") for d in compute.get("devices", [])
            if "GPU" in str(d.get("type", ""))]
    if not gpu["supported"]:
        offload = "no GPU offload (a CPU build of llama.cpp: see docs/settings.md for GPU wheels)"
    elif gpu["used"]:
        layers = "all" if gpu["layers_requested"] == -1 else gpu["layers_requested"]
        offload = f"GPU offload: {layers} layers on {', '.join(map(str, gpus)) or 'the GPU'}"
    else:
        offload = "GPU offload available, off (embedded_gpu_layers = 0)"
    features = " ".join(compute["cpu_features"]) or "unknown"
    engine = compute.get("engine") or {}
    build = f"llama.cpp via xllamacpp {engine.get('version') or '?'}"
    if engine.get("build_info"):
        build += f" ({engine['build_info']})"
    return f"{build}; CPU {features}, {compute['threads']} threads, {offload}"
