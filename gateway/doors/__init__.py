"""Front doors' wire formats, transport-free: one parser (client body -> ChatRequest or
EmbedRequest) and one encoder (normalized Events -> the door's stream or JSON body) per
protocol. Doors import request, rejection and streaming.events only; the server wires them
to the pipeline, and the engine never learns which door a request came through."""
