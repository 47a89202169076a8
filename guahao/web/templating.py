"""Jinja2 set-up shared by every feature's pages: one base layout, filters for money and dates."""

from pathlib import Path

from fastapi.templating import Jinja2Templates

from guahao.clock import local

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))


def yuan(fen: int | None) -> str:
    """Integer fen shown as yuan: 5000 -> ¥50.00."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100}.{abs(fen) % 100:02d}"


WEEKDAYS = "一二三四五六日"


def cn_date(d) -> str:
    return f"{d.month}月{d.day}日 周{WEEKDAYS[d.weekday()]}"


def cn_datetime(dt) -> str:
    dt = local(dt)
    return f"{dt:%Y-%m-%d %H:%M}"


templates.env.filters["yuan"] = yuan
templates.env.filters["cn_date"] = cn_date
templates.env.filters["cn_datetime"] = cn_datetime
templates.env.globals["PERIOD_LABELS"] = {"AM": "上午", "PM": "下午"}
