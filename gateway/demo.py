"""`race-gateway demo`: simulated providers and the gateway in one process, no keys needed."""

from __future__ import annotations

from typing import Any

from gateway.config import Config, parse_config
from gateway.sim.config import SimConfig

# A chat frontend served by a local dev server (any port) may call the demo from a browser.
DEMO_CORS_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
# The demo's console (GET /ui) signs in with this key; nothing behind it is real.
DEMO_ADMIN_KEY = "demo-admin"

# Wire protocol of a simulated server -> provider kind of the adapter that speaks it.
_KIND = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "ollama": "ollama"}


def demo_gateway_config(sim: SimConfig, base_urls: dict[str, str], port: int) -> dict[str, Any]:
    """A gateway config over every simulated model: a race route, a hedge route, a fallback
    over the chat models, and a fallback route over the embedding models."""
    providers: dict[str, Any] = {}
    deployments: dict[str, Any] = {}
    embedders: list[str] = []
    for server_name, server in sim.servers.items():
        providers[server_name] = {
            "kind": _KIND[server.kind],
            "base_url": base_urls[server_name],
            "api_key": "sim-key-not-secret",
        }
        if server.handshake_ms > 0:  # a distant provider, over https in earnest: replace
            # a race's cut connections, as `auto` does there
            providers[server_name]["replace_cut_connections"] = True
        for model_name, model in server.models.items():
            p50 = model.ttft_ms if model.ttft_ms is not None else model.ttft_p50_ms
            p95 = model.ttft_ms if model.ttft_ms is not None else model.ttft_p95_ms
            deployments[model_name] = {
                "provider": server_name,
                "model": model_name,
                "prior": {"ttft_p50_ms": p50, "ttft_p95_ms": max(p95, p50)},
                "drop_params": True,
            }
            if model.type == "embedding":
                deployments[model_name]["type"] = "embedding"
                embedders.append(model_name)
    names = [name for name in deployments if name not in embedders]
    embeddings = {"embeddings": {"strategy": "fallback", "deployments": embedders}}
    return {
        "listen": {"host": "127.0.0.1", "port": port},
        "cors": {"allow_origins": list(DEMO_CORS_ORIGINS)},
        "admin": {"key": DEMO_ADMIN_KEY},
        "providers": providers,
        "deployments": deployments,
        "routes": {
            "chat": {
                "strategy": "race",
                "k": min(2, len(names)),
                "deployments": names,
                "max_extra_load": 1.0,
            },
            "hedged": {
                "strategy": "hedge",
                "k": min(2, len(names)),
                "deployments": names,
                "hedge_delay_ms": 800,
            },
            "reliable": {"strategy": "fallback", "deployments": names},
            **(embeddings if embedders else {}),
        },
    }


def demo_config(sim: SimConfig, base_urls: dict[str, str], port: int) -> Config:
    return parse_config(demo_gateway_config(sim, base_urls, port), env={})


MESSAGES_BODY = (
    '{"model": "chat", "max_tokens": 256, "stream": true, '
    '"messages": [{"role": "user", "content": "Hello!"}]}'
)


def banner(url: str) -> str:
    return f"""
Race Gateway demo is running on {url} (simulated providers, no keys needed).

Try it with curl:

  curl -N {url}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "chat", "stream": true, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

The Responses API (OpenAI's newer door; `store: true` keeps a turn for previous_response_id):

  curl -N {url}/v1/responses -H 'Content-Type: application/json' \\
    -d '{{"model": "chat", "stream": true, "input": "Hello!"}}'

The Anthropic Messages API (any Anthropic client, base URL {url}):

  curl -N {url}/v1/messages -H 'Content-Type: application/json' \\
    -H 'anthropic-version: 2023-06-01' \\
    -d '{MESSAGES_BODY}'

Or with the official OpenAI SDK (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="demo")
  stream = client.chat.completions.create(
      model="chat", stream=True, messages=[{{"role": "user", "content": "Hello!"}}]
  )
  for chunk in stream:
      if chunk.choices:
          print(chunk.choices[0].delta.content or "", end="", flush=True)

Embeddings (deterministic vectors per input):

  curl {url}/v1/embeddings -H 'Content-Type: application/json' \\
    -d '{{"model": "embeddings", "input": ["Hello!", "Bonjour !"], "dimensions": 8}}'

Routes: chat (race k=2), hedged (hedge), reliable (fallback), embeddings (fallback).
Metrics: {url}/metrics
Console: {url}/ui (admin key: {DEMO_ADMIN_KEY}): live races, latency map, spend, recent requests.
CORS is on for browser pages from local dev servers ({", ".join(DEMO_CORS_ORIGINS)}):
a chat frontend on any local port can stream from the demo with fetch().
Press Ctrl-C to stop.
"""


async def run_demo(host: str, port: int) -> None:
    from gateway.runtime import Gateway
    from gateway.server.app import start_server, wait_for_shutdown_signal
    from gateway.sim.server import SimCluster, default_demo_sim_config

    sim_config = default_demo_sim_config()
    cluster = SimCluster(sim_config)
    await cluster.start()
    try:
        urls = {name: cluster.base_url(name) for name in sim_config.servers}
        config = demo_config(sim_config, urls, port)
        runner, url = await start_server(Gateway(config), host, port)
        try:
            print(banner(url), flush=True)
            await wait_for_shutdown_signal()
        finally:
            await runner.cleanup()
    finally:
        await cluster.stop()
