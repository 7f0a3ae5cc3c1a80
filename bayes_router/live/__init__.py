"""Live collection: calls to an OpenAI-compatible chat-completions endpoint, stored durably.

* :mod:`~bayes_router.live.prompt`: the zero-shot chain-of-thought prompt and the answer parser;
* :mod:`~bayes_router.live.store`: the SQLite store (WAL, one transaction per finished call);
* :mod:`~bayes_router.live.client`: the asynchronous HTTP client (concurrency, rate limit, retries);
* :mod:`~bayes_router.live.collect`: what ``bayes-router collect`` runs;
* :mod:`~bayes_router.live.export`: the store as a call log (``log_source = "live"``);
* :mod:`~bayes_router.live.replay`: a chat-completions server that replays a call log, for tests.
"""
