"""`POST /v1/embeddings`: parse -> pipeline -> one JSON body (the OpenAI list object).

An embeddings answer arrives whole, so there is no stream: the winner's one batch is
assembled, a failure before it is an HTTP error in the OpenAI envelope.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.doors.embeddings import EmbeddingsAssembler, parse_embeddings_request
from gateway.server.answering import answer_headers, complete_answer, open_answer, respond
from gateway.server.errors import upstream_error_response
from gateway.server.keys import GATEWAY


async def embeddings(request: web.Request) -> web.StreamResponse:
    limits = request[GATEWAY].config.limits
    embed, answer = await open_answer(
        request,
        "embeddings",
        lambda raw: parse_embeddings_request(raw, request.headers, limits),
    )

    async def complete() -> web.StreamResponse:
        assembler = EmbeddingsAssembler(embed.model, embed.encoding_format)
        outcome = await complete_answer(answer, assembler, upstream_error_response)
        if isinstance(outcome, web.Response):
            return outcome
        return web.Response(
            body=orjson.dumps(assembler.build()),
            content_type="application/json",
            headers=answer_headers(answer.request_id, outcome.deployment),
        )

    return await respond(answer, complete)
