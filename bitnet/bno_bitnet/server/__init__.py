"""``bitnet serve``: an OpenAI-compatible HTTP server for the bundled model, with continuous batching.

* :mod:`~bno_bitnet.server.protocol`: the request bodies (pydantic) and the response documents.
* :mod:`~bno_bitnet.server.batch_cache`: a KV cache whose rows join and leave between decode steps.
* :mod:`~bno_bitnet.server.scheduler`: the thread that owns the model: admits requests, prefills them,
  decodes every running row in one step, hands tokens to the requests.
* :mod:`~bno_bitnet.server.app`: the FastAPI routes, server-sent events and OpenAI-shaped errors.
* :mod:`~bno_bitnet.server.runner`: uvicorn's lifecycle: the socket, signals, graceful shutdown.

FastAPI and uvicorn come with the ``serve`` extra; nothing here is imported on the CLI's start path.
"""
