"""ASGI entry point for servers: `uvicorn guahao.asgi:app`."""

from guahao.app import create_app

app = create_app()
