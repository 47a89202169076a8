"""The `guahao` command: database, demo data, server."""

import os
import sys
from typing import Annotated

import typer

app = typer.Typer(help="guahao 预约挂号 platform", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database migrations", no_args_is_help=True)
app.add_typer(db_app, name="db")

DEMO_PHONE = "13800138000"
DEMO_PASSWORD = "demo1234"
DEMO_NAME = "张三"
DEMO_ID = "11010519491231002X"


def _settings():
    from guahao.config import get_settings

    try:
        return get_settings()
    except Exception as e:  # pydantic's validation message is the clearest thing to show
        typer.echo(f"配置错误 / settings error: {e}", err=True)
        raise typer.Exit(2) from None


def _database():
    from guahao.db import make_database

    s = _settings()
    return make_database(s.database_url)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head"):
    """Apply migrations up to REVISION (default: head)."""
    from guahao.migrate import upgrade

    db = _database()
    upgrade(db.engine, revision)
    typer.echo(f"database at {revision}: {db.engine.url.render_as_string(hide_password=True)}")


@app.command()
def demo():
    """Load the demo catalog (49 Beijing hospitals, generated departments/doctors/sessions) and a demo patient."""
    from guahao.accounts import repository as arepo
    from guahao.accounts import service as accounts
    from guahao.catalog.demo import generate_sessions, load_catalog
    from guahao.clock import clock_from_setting, local_today

    db = _database()
    clock = clock_from_setting(_settings().now)
    with db.transaction() as s:
        created = load_catalog(s)
    with db.transaction() as s:
        sessions = generate_sessions(s, local_today(clock))
    with db.transaction() as s:
        if arepo.account_by_phone(s, DEMO_PHONE) is None:
            accounts.register(s, clock.now(), DEMO_PHONE, DEMO_PASSWORD, DEMO_NAME, DEMO_ID)
    typer.echo(f"demo: {created} hospitals created, {sessions} clinic sessions added (today {local_today(clock)})")
    typer.echo(f"demo patient login: {DEMO_PHONE} / {DEMO_PASSWORD}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="server processes (production: 2 per core)")] = 1,
):
    """Serve the platform (API at /api/v1, docs at /docs)."""
    import uvicorn

    _settings()
    typer.echo(f"guahao serving at http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run("guahao.asgi:app", host=host, port=port, workers=workers, log_level="info",
                proxy_headers=True)


def main():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
