"""Load testing of any OpenAI-compatible streaming endpoint (closed or open loop).

    result = await run_load("http://127.0.0.1:8080/v1", "chat", concurrency=20, requests=500)
    print(format_text(result))

`main(argv)` is the command line (`race-gateway bench`, `python -m gateway.loadtest`).
"""

from gateway.loadtest.cli import main
from gateway.loadtest.client import LoadResult, LoadSpec, make_session, run_load, run_spec
from gateway.loadtest.report import format_text, plot_ttft_cdf, write_json, write_plots
from gateway.loadtest.stats import (
    Distribution,
    LoadSummary,
    RequestSample,
    distribution,
    percentile,
    summarize,
)
from gateway.loadtest.timing import StreamTimer, is_token_chunk

__all__ = [
    "Distribution",
    "LoadResult",
    "LoadSpec",
    "LoadSummary",
    "RequestSample",
    "StreamTimer",
    "distribution",
    "format_text",
    "is_token_chunk",
    "main",
    "make_session",
    "percentile",
    "plot_ttft_cdf",
    "run_load",
    "run_spec",
    "summarize",
    "write_json",
    "write_plots",
]
