"""``pixelseg serve``: an HTTP API and a web page for a model.

- ``server.py``: ``serve()`` loads the model and runs uvicorn, in one process or several;
- ``app.py``: the FastAPI application and its endpoints (``create_app``);
- ``limits.py``: what one server accepts (``ServeLimits``), and ``admission.py``: how;
- ``batcher.py``: the model's thread, batching requests that arrive together;
- ``work.py``: the work of one request, bounded by what it costs;
- ``schemas.py``: the JSON bodies of the answers and the refusals.

Importing this package imports neither FastAPI nor uvicorn (``app`` does, when a server
starts), so ``import pixelseg`` works without the serve extra.
"""

from .server import WORKER_FACTORY, app_from_env, serve, worker_environment

__all__ = ["WORKER_FACTORY", "app_from_env", "serve", "worker_environment"]
