"""A small demo price table (M1, M3): illustrative prices and reimbursement shares, not official ones.

No registration rows: without one the registration fee is all self-pay, so a demo's prepaid amount is the
session fee and refund tiers apply to exactly that. A hospital may add `REG-<号别>` rows to insure it.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.billing.models import PriceItem
from guahao.catalog.models import Hospital

# code, name, category, unit, unit price (fen), 北京医保 %, 京外医保 %
DEMO_PRICES = [
    ("CT-HEAD", "头颅CT平扫", "exam", "次", 30000, 80, 60),
    ("MRI-LSPINE", "腰椎MRI", "exam", "次", 60000, 70, 50),
    ("US-ABD", "腹部B超", "exam", "次", 15000, 80, 60),
    ("BLOOD", "血常规", "exam", "次", 2500, 80, 60),
    ("ECG", "心电图", "exam", "次", 3000, 80, 60),
    ("DRUG-AMOX", "阿莫西林胶囊 0.25g×24粒", "drug", "盒", 1850, 70, 50),
    ("DRUG-ATOR", "阿托伐他汀钙片 20mg×7片", "drug", "盒", 3620, 70, 50),
    ("VIP-CARE", "特需诊疗服务", "special", "次", 20000, 0, 0),
]


def seed_price_tables(s: Session) -> int:
    n = 0
    for h in s.scalars(select(Hospital)).all():
        if s.scalar(select(PriceItem.id).where(PriceItem.hospital_id == h.id).limit(1)) is not None:
            continue
        for code, name, cat, unit, price, lp, nlp in DEMO_PRICES:
            s.add(PriceItem(hospital_id=h.id, code=code, name=name, category=cat, unit=unit, unit_price=price,
                            local_pct=lp, non_local_pct=nlp))
        n += 1
    s.flush()
    return n
