"""The gateway's layers, as a test: a lower layer never imports a higher one.

The rule (DESIGN.md, the package docstrings, issue 14) written as a table: each layer
names the modules it holds and the modules outside itself it may import; a module may
always import its own layer. Layers are listed bottom up:

- language: what every layer may import as it may `dataclasses` (`value_class`);
- foundation: request, refusal and strategy types, background tasks, logging setup;
- codec: streaming's pure wire half (events, line framing, SSE / NDJSON decoders, the
  chat encoders, the adapter contract of `streaming/adapter.py`);
- providers: pure adapters, one per wire protocol; they see requests and the codec only
  (never config: they get `ProviderSettings`, never server, runtime or routing);
- catalogue: the model facts shipped in the package and a config's private catalogue files;
- config: the YAML model and loader; it asks the provider registry for the valid kinds;
- doors: the front doors' parsers and encoders, transport-free (notes/doors.md);
- aiohttp seam: `compat_aiohttp.py`, the only module that touches aiohttp's internals;
- streaming: the race engine and the upstream client; never providers;
- governance, latency, routing: policies over requests, latency profiles, routes;
- core: the request pipeline, its recording and the wiring (pipeline, admission, region,
  record, sinks, metrics, runtime, state, upstreams, prewarming); the engine never learns
  which front door a request came through, so no doors here;
- server (HTTP), regress (suites with no HTTP), loadtest and sim (standalone tools);
- entry points (`__main__`, cli, demo, check_config, list_models): the only importers of
  server.

Pure layers (providers, codec, doors, governance) also import no I/O library and no
clock, and only the seam imports aiohttp modules other than `aiohttp` and `aiohttp.web`.
How imports are found (function-level, `TYPE_CHECKING`, `importlib` with a literal name)
is in `import_graph.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.import_graph import Import, import_graph, modules_under

GATEWAY_DIR = Path(__file__).resolve().parents[2] / "gateway"
ROOT = "gateway"


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # modules, or packages with everything under them
    may_import: tuple[str, ...]  # outside the layer; same convention
    pure: bool = False  # no I/O library, no clock


MODELS = ("gateway.request", "gateway.rejection", "gateway.strategy")  # shared vocabulary
FOUNDATION = (
    *MODELS,
    "gateway.tasks",
    "gateway.logs",
    "gateway.log_writer",
    "gateway.loop_metrics",
)
# what every layer may import, as it may `dataclasses`: no I/O, no gateway import
LANGUAGE = ("gateway.value_class",)
CODEC = (
    "gateway.streaming.events",
    "gateway.streaming.lines",
    "gateway.streaming.sse",
    "gateway.streaming.ndjson",
    "gateway.streaming.encode",
    "gateway.streaming.adapter",
)
COMPAT = "gateway.compat_aiohttp"
SEAM = "aiohttp seam"
# any other aiohttp module is an internal; typedefs holds public type aliases (Middleware, ...)
AIOHTTP_PUBLIC = ("aiohttp", "aiohttp.web", "aiohttp.typedefs")
DOMAIN = (  # what the core and the applications above it build on
    *FOUNDATION,
    "gateway.catalogue",
    "gateway.config",
    "gateway.redislayer",
    "gateway.providers",
    "gateway.streaming",
    "gateway.governance",
    "gateway.latency",
    "gateway.routing",
)
CORE = (
    "gateway.runtime",  # wiring
    "gateway.reload",  # what a config reload changes, what carries over
    "gateway.config_checks",  # checks that need routing / providers (check-config, reload)
    "gateway.state",
    "gateway.upstreams",
    "gateway.prewarming",
    "gateway.pipeline",  # a request's road: admission, region, governance, plan, race
    "gateway.answer",  # one admitted request's answer (the race or resumer, recorded once)
    "gateway.admission",
    "gateway.scrub",  # secrets cut from what upstreams say
    "gateway.shared_versions",  # model versions noticed by every instance (Redis)
    "gateway.region",
    "gateway.record",  # one record per request, to the sinks
    "gateway.sinks",
    "gateway.console",  # the console's sinks: recent requests, live rates, spend by outcome
    "gateway.metrics",
    "gateway.responses_store",  # stored responses of the Responses door, per state backend
    "gateway.telemetry",  # traces built from the record; only its `export` imports OTel
    "gateway.access",  # the key ring: config and runtime gateway keys
)
ENTRY_POINTS = (
    "gateway.__main__",
    "gateway.cli",
    "gateway.demo",
    "gateway.check_config",
    "gateway.list_models",
)

LAYERS: tuple[Layer, ...] = (
    Layer("language", LANGUAGE, (), pure=True),
    Layer("foundation", FOUNDATION, ()),
    Layer("codec", CODEC, MODELS, pure=True),
    Layer("providers", ("gateway.providers",), ("gateway.request", *CODEC), pure=True),
    # config asks the provider registry for the valid kinds (plugins included); it imports
    # it by name (`importlib`), so that config tests can swap the registry out
    Layer("catalogue", ("gateway.catalogue",), ()),
    Layer(
        "config",
        ("gateway.config",),
        (*MODELS, "gateway.providers.registry", "gateway.catalogue"),
    ),
    Layer(
        "doors",
        ("gateway.doors",),
        (*MODELS, "gateway.streaming.events", "gateway.config.model"),
        pure=True,
    ),
    Layer(SEAM, (COMPAT,), ()),
    Layer("streaming", ("gateway.streaming",), (*FOUNDATION, *CODEC, COMPAT)),
    Layer(
        "governance", ("gateway.governance",), (*FOUNDATION, *CODEC, "gateway.config"), pure=True
    ),
    # the one Redis connection layer every Redis-backed component of the state uses
    Layer("redis layer", ("gateway.redislayer",), (*FOUNDATION, "gateway.config")),
    Layer(
        "latency",
        ("gateway.latency",),
        (*FOUNDATION, "gateway.config", "gateway.streaming", "gateway.redislayer"),
    ),
    Layer(
        "routing",
        ("gateway.routing",),
        (
            *FOUNDATION,
            "gateway.config",
            "gateway.streaming",
            "gateway.latency",
            "gateway.redislayer",
        ),
    ),
    Layer("core", CORE, DOMAIN),
    Layer("server", ("gateway.server",), (*DOMAIN, *CORE, "gateway.doors", COMPAT)),
    Layer("regress", ("gateway.regress",), (*DOMAIN, *CORE, "gateway.doors", "gateway.loadtest")),
    Layer("loadtest", ("gateway.loadtest",), CODEC),
    # The simulator implements every wire format on its own, so that a gateway bug cannot
    # hide behind the same bug in the simulator; it uses only the aiohttp seam (its HTTP/2
    # server runs the sim's aiohttp app).
    Layer("sim", ("gateway.sim",), (COMPAT,)),
    Layer("entry points", (ROOT, *ENTRY_POINTS), (ROOT,)),
)

# Modules the table may name before they exist (none at the moment).
PLANNED: frozenset[str] = frozenset()

# (importer, imported) -> why it is tolerated for now. Add only with the refactor that will
# remove it; an entry that no longer matches an import fails the test.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

IO_MODULES = ("aiohttp", "asyncio", "redis", "socket", "uvloop", "time", "structlog")


def within(module: str, prefix: str) -> bool:
    """`module` is `prefix` or lies under it."""
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str, layers: Sequence[Layer] = LAYERS) -> Layer | None:
    """The layer holding `module`: the one with the longest matching entry. The root package
    holds only itself (else every module missing from the table would land in it)."""
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for prefix in layer.modules:
            if (module == prefix if prefix == ROOT else within(module, prefix)) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return best[1] if best else None


def violations(
    imports: Iterable[Import],
    modules: Iterable[str],
    layers: Sequence[Layer] = LAYERS,
    known: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """One message per module outside the table and per forbidden import."""
    known = KNOWN_EXCEPTIONS if known is None else known
    problems = [
        f"{m} is in no layer: add it to LAYERS in tests/unit/test_layering.py"
        for m in sorted(modules)
        if layer_of(m, layers) is None
    ]
    for imp in sorted(imports, key=lambda i: (i.importer, i.line, i.target)):
        own = layer_of(imp.importer, layers)
        if own is None or (imp.importer, imp.target) in known:
            continue
        top = imp.target.split(".")[0]
        if not within(imp.target, ROOT):
            if own.pure and top in IO_MODULES:
                problems.append(
                    f"{imp.importer} imports {imp.target} (line {imp.line}): {own.name} is pure"
                    f" (no I/O, no clock) and may not import {', '.join(IO_MODULES)}"
                )
            elif top == "aiohttp" and imp.target not in AIOHTTP_PUBLIC and own.name != SEAM:
                problems.append(
                    f"{imp.importer} imports {imp.target} (line {imp.line}): aiohttp's"
                    " internals are reached only through gateway/compat_aiohttp.py"
                )
            continue
        target_layer = layer_of(imp.target, layers)
        if target_layer is own or (target_layer is not None and target_layer.name == "language"):
            continue
        if not any(within(imp.target, allowed) for allowed in own.may_import):
            allowed = ", ".join(own.may_import) or "nothing outside itself"
            problems.append(
                f"{imp.importer} imports {imp.target} (line {imp.line}): "
                f"{own.name} may import only {allowed}"
            )
    return problems


def stale_exceptions(imports: Iterable[Import]) -> list[tuple[str, str]]:
    seen = {(i.importer, i.target) for i in imports}
    return sorted(pair for pair in KNOWN_EXCEPTIONS if pair not in seen)


# --- the gateway as it is ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_imports() -> list[Import]:
    return import_graph(GATEWAY_DIR)


def test_no_layer_imports_a_higher_one(gateway_imports: list[Import]) -> None:
    modules = [m.name for m in modules_under(GATEWAY_DIR)]
    problems = violations(gateway_imports, modules)
    assert not problems, "layering violations:\n  " + "\n  ".join(problems)


def test_known_exceptions_still_exist(gateway_imports: list[Import]) -> None:
    assert stale_exceptions(gateway_imports) == [], "remove these from KNOWN_EXCEPTIONS"


def test_the_scan_sees_function_level_imports(gateway_imports: list[Import]) -> None:
    # cli.py imports the server inside `main`: a scanner blind to those would pass anything.
    assert any(
        i.importer == "gateway.cli" and i.target == "gateway.server.app" for i in gateway_imports
    )


def _overlap(allowed: str, member: str) -> bool:
    """An import allowed by `allowed` can land on the layer entry `member`."""
    return within(member, allowed) or (member != ROOT and within(allowed, member))


def test_the_table_is_a_stack() -> None:
    """Every entry names a real module, and no two layers may import each other (even through
    others): the allowed imports form a DAG, so the layers stack."""
    real = {m.name for m in modules_under(GATEWAY_DIR)}
    packages = {m.rsplit(".", 1)[0] for m in real}
    for layer in LAYERS:
        for entry in (*layer.modules, *layer.may_import):
            assert entry in real | packages | PLANNED, f"{layer.name}: no module {entry}"
    edges = {
        layer.name: {
            other.name
            for other in LAYERS
            if other is not layer
            and any(_overlap(a, m) for a in layer.may_import for m in other.modules)
        }
        for layer in LAYERS
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "layers import each other: " + " -> ".join((*path, name))
        if name not in done:
            for below in sorted(edges[name]):
                visit(below, (*path, name))
            done.add(name)

    for layer in LAYERS:
        visit(layer.name, ())


# --- the checker fails when it should -------------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in {"__init__.py": "", **files}.items():
        path = tmp_path / "gateway" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return tmp_path / "gateway"


def _check(tmp_path: Path, files: dict[str, str]) -> list[str]:
    package = _package(tmp_path, files)
    names = [m.name for m in modules_under(package)]
    return violations(import_graph(package), names, known={})


SERVER = {"server/app.py": "", "runtime.py": "", "streaming/upstream.py": ""}


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("from gateway.server.app import build_app\n", 1),
        ("def f():\n    from gateway.server.app import build_app\n", 2),
        ("def f():\n    import gateway.server.app\n", 2),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import gateway.server.app\n", 3),
        ("from ..server import app\n", 1),
        ("class A:\n    def f(self):\n        from gateway.server import app\n", 3),
        ("import importlib\nmod = importlib.import_module('gateway.server.app')\n", 2),
        ("m = __import__('gateway.server.app')\n", 1),
        ("try:\n    import gateway.server.app\nexcept ImportError:\n    pass\n", 2),
    ],
    ids=[
        "module",
        "function",
        "import-in-function",
        "type-checking",
        "relative",
        "method",
        "importlib",
        "dunder-import",
        "try",
    ],
)
def test_a_provider_importing_the_server_fails(tmp_path: Path, source: str, line: int) -> None:
    problems = _check(tmp_path, {**SERVER, "providers/bad.py": source})
    assert problems == [
        f"gateway.providers.bad imports gateway.server.app (line {line}): providers may"
        " import only gateway.request, " + ", ".join(CODEC)
    ]


def test_streaming_importing_providers_fails(tmp_path: Path) -> None:
    problems = _check(
        tmp_path,
        {"providers/base.py": "", "streaming/race.py": "from gateway.providers import base\n"},
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "gateway.streaming.race imports gateway.providers.base (line 1): streaming may import only"
    )


def test_a_provider_may_use_the_codec_but_not_the_engine(tmp_path: Path) -> None:
    files = {
        "streaming/sse.py": "",
        "streaming/upstream.py": "",
        "providers/ok.py": "from gateway.streaming import sse\nfrom gateway.request import X\n",
        "providers/bad.py": "from gateway.streaming import upstream\n",
    }
    problems = _check(tmp_path, files)
    assert [p.split(":")[0] for p in problems] == [
        "gateway.providers.bad imports gateway.streaming.upstream (line 1)"
    ]


def test_only_entry_points_import_the_server(tmp_path: Path) -> None:
    files = {
        "server/app.py": "",
        "cli.py": "def main():\n    from gateway.server import app\n",
        "regress/suite.py": "from gateway.server.app import x\n",
        "runtime.py": "import gateway.server.app\n",
    }
    problems = [p.split(":")[0] for p in _check(tmp_path, files)]
    assert problems == [
        "gateway.regress.suite imports gateway.server.app (line 1)",
        "gateway.runtime imports gateway.server.app (line 1)",
    ]


def test_doors_import_only_requests_refusals_and_events(tmp_path: Path) -> None:
    files = {
        "streaming/events.py": "",
        "streaming/race.py": "",
        "config/model.py": "",
        "doors/chat.py": (
            "from gateway.request import ChatRequest\nfrom gateway.rejection import Rejected\n"
            "from gateway.streaming.events import Event\nfrom gateway.config.model import L\n"
            "from gateway.streaming.race import RaceEngine\n"
        ),
    }
    problems = [p.split(":")[0] for p in _check(tmp_path, files)]
    assert problems == ["gateway.doors.chat imports gateway.streaming.race (line 5)"]


def test_a_pure_layer_importing_io_fails(tmp_path: Path) -> None:
    files = {"providers/x.py": "def f():\n    import asyncio\n    import time\n"}
    problems = _check(tmp_path, files)
    assert [p.split(":")[0] for p in problems] == [
        "gateway.providers.x imports asyncio (line 2)",
        "gateway.providers.x imports time (line 3)",
    ]


def test_aiohttp_internals_only_in_the_seam(tmp_path: Path) -> None:
    files = {
        "compat_aiohttp.py": "from aiohttp.web_protocol import RequestHandler\n",
        "server/app.py": "import aiohttp\nfrom aiohttp import web\n",
        "server/protocol.py": "def f():\n    from aiohttp.web_protocol import RequestHandler\n",
    }
    problems = _check(tmp_path, files)
    assert problems == [
        "gateway.server.protocol imports aiohttp.web_protocol (line 2): aiohttp's internals"
        " are reached only through gateway/compat_aiohttp.py"
    ]


def test_a_module_outside_the_table_fails(tmp_path: Path) -> None:
    problems = _check(tmp_path, {"newthing.py": ""})
    assert problems == [
        "gateway.newthing is in no layer: add it to LAYERS in tests/unit/test_layering.py"
    ]


def test_a_known_exception_is_tolerated_only_for_its_import(tmp_path: Path) -> None:
    package = _package(tmp_path, {**SERVER, "providers/bad.py": "import gateway.server.app\n"})
    names = [m.name for m in modules_under(package)]
    graph = import_graph(package)
    known = {("gateway.providers.bad", "gateway.server.app"): "refactor in progress"}
    assert violations(graph, names, known=known) == []
    assert len(violations(graph, names, known={})) == 1
