"""Set-up of bench.race_strategies: deployment shapes, the routes under test, configs.

Pure data; the simulator and gateway are started by bench.race_strategies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.shapes import Shape, hedge_survival, race_survival
from gateway.sim.server import SimCluster

SEED = 2024
TOKENS, ITL_MS = 8, 15.0
TARGETS = {  # deployment: (p50, p95, p99 ms, straggler share)
    "A": (540.0, 840.0, 4500.0, 0.03),
    "B": (480.0, 780.0, 1300.0, 0.02),
    "C": (520.0, 820.0, 2000.0, 0.025),
}


Survival = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Strategy:
    key: str  # single | fallback | hedge | hedge_profile | race2 | race3
    name: str
    route: dict[str, Any]
    ideal: Callable[[dict[str, Shape]], Survival]  # analytic TTFT of the intended plan


def strategies(hedge_delay_ms: float) -> list[Strategy]:
    common = {"max_extra_load": 5.0, "heartbeat_after_s": 30.0}
    order = ["B", "C", "A"]  # race/hedge: the planner re-orders by predicted TTFT anyway
    d = hedge_delay_ms
    return [
        Strategy(
            "single",
            "single B",
            {"strategy": "fallback", "deployments": ["B"], **common},
            lambda sh: race_survival(sh["B"]),
        ),
        Strategy(
            "fallback",
            "fallback B,A,C",
            {"strategy": "fallback", "deployments": ["B", "A", "C"], **common},
            lambda sh: race_survival(sh["B"]),  # nothing fails here: always B
        ),
        Strategy(
            "hedge",
            f"hedge at B's p90, fixed {d:.0f} ms",
            {
                "strategy": "hedge",
                "k": 2,
                "hedge_delay_ms": d,
                "hedge_min_ms": d,  # pins the delay: the profile cannot move it
                "hedge_max_ms": d,
                "deployments": order,
                **common,
            },
            lambda sh: hedge_survival(sh["B"], sh["C"], d),
        ),
        Strategy(
            "hedge_profile",
            "hedge at p90 from profiles",
            {
                "strategy": "hedge",
                "k": 2,
                "hedge_delay_ms": d,  # until the profile has enough samples
                "hedge_quantile": 0.9,
                "deployments": order,
                **common,
            },
            lambda sh: hedge_survival(sh["B"], sh["C"], d),
        ),
        Strategy(
            "race2",
            "race k=2",
            {"strategy": "race", "k": 2, "deployments": order, **common},
            lambda sh: race_survival(sh["B"], sh["C"]),
        ),
        Strategy(
            "race3",
            "race k=3",
            {"strategy": "race", "k": 3, "deployments": order, **common},
            lambda sh: race_survival(sh["B"], sh["C"], sh["A"]),
        ),
    ]


def route_name(strategy: Strategy) -> str:
    return "r-" + strategy.key.replace("_", "-")


def sim_data(
    shapes: dict[str, Shape],
    handshake_ms: float = 0.0,
    http2: bool = False,
    tls: tuple[Path, Path] | None = None,
) -> dict[str, Any]:
    """`handshake_ms`: a new connection's handshake (a TLS handshake's round trips to a
    real provider): paid by its first request, or over `tls` ((key, certificate) PEM
    files) by the TLS handshake itself; `http2`: the servers speak HTTP/2."""
    served = {"tls_key": str(tls[0]), "tls_cert": str(tls[1])} if tls else {}
    return {
        "seed": SEED,
        "servers": {
            f"sim-{name.lower()}": {
                "kind": "openai",
                "handshake_ms": handshake_ms,
                **({"http2": True} if http2 else {}),
                **served,
                "models": {
                    f"model-{name.lower()}": {
                        **shape.sim_keys(),
                        "itl_ms": ITL_MS,
                        "tokens": TOKENS,
                    }
                },
            }
            for name, shape in shapes.items()
        },
    }


def gateway_data(
    cluster: SimCluster,
    plan: list[Strategy],
    http2: bool = False,
    replace_cut: bool | None = None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """`replace_cut`: the providers' `replace_cut_connections` (None: the default, auto);
    `ca_file`: the certificate of simulators on TLS."""
    providers = {
        name: {
            "kind": "openai",
            "base_url": cluster.base_url(name),
            "api_key": "sim-key",
            "max_connections": 512,
            **({"http2": True} if http2 else {}),
            **({"tls_ca_file": str(ca_file)} if ca_file else {}),
            **({} if replace_cut is None else {"replace_cut_connections": replace_cut}),
        }
        for name in cluster.servers
    }
    deployments = {  # priors: what an operator would configure from published figures
        name: {
            "provider": f"sim-{name.lower()}",
            "model": f"model-{name.lower()}",
            "prior": {"ttft_p50_ms": p50, "ttft_p95_ms": p95},
        }
        for name, (p50, p95, _, _) in TARGETS.items()
    }
    routes = {route_name(s): s.route for s in plan}
    return {
        "logging": {"level": "warning"},
        "providers": providers,
        "deployments": deployments,
        "routes": routes,
    }
