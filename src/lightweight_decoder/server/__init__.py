"""The HTTP service (FastAPI): ``create_app`` and ``ServerConfig``."""

from .app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
