"""Receipts (M3: one for every payment and refund) and monthly/yearly totals per patient."""

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from guahao.accounts.models import Patient
from guahao.billing.models import Bill, BillItem, Payment, Refund
from guahao.catalog.models import Hospital
from guahao.clock import local
from guahao.errors import DomainError


def receipts(s: Session, account_id: int) -> list[dict]:
    out = []
    for p in s.scalars(select(Payment).where(Payment.account_id == account_id, Payment.status == "paid")):
        out.append(dict(kind="payment", id=p.id, number=p.out_trade_no, amount=p.amount, at=p.paid_at,
                        status="paid", title="缴费"))
    for r in s.scalars(select(Refund).join(Payment, Payment.id == Refund.payment_id)
                       .where(Payment.account_id == account_id)):
        out.append(dict(kind="refund", id=r.id, number=r.out_refund_no, amount=r.amount,
                        at=r.succeeded_at or r.created_at, status=r.status, title="退款"))
    for x in out:
        x["html_url"] = f"/billing/receipts/{x['kind']}/{x['id']}"
        x["pdf_url"] = f"/billing/receipts/{x['kind']}/{x['id']}.pdf"
    return sorted(out, key=lambda x: x["at"], reverse=True)


def receipt(s: Session, account_id: int | None, kind: str, rid: int) -> dict:
    """Everything an electronic receipt shows; NOT_FOUND for another account's."""
    if kind == "payment":
        p = s.get(Payment, rid)
        if p is None or p.status != "paid" or (account_id is not None and p.account_id != account_id):
            raise DomainError("NOT_FOUND", "未找到该收据")
        bills = list(s.scalars(select(Bill).where(Bill.payment_id == p.id).order_by(Bill.id)))
        amount, number, at, status, refund_of = p.amount, p.out_trade_no, p.paid_at, "已支付", None
    elif kind == "refund":
        r = s.get(Refund, rid)
        p = s.get(Payment, r.payment_id) if r else None
        if r is None or (account_id is not None and p.account_id != account_id):
            raise DomainError("NOT_FOUND", "未找到该收据")
        bills = [s.get(Bill, r.bill_id)] if r.bill_id else []
        labels = {"requested": "退款处理中", "succeeded": "退款成功", "failed": "退款失败，将自动重试"}
        amount, number, at, status = r.amount, r.out_refund_no, r.succeeded_at or r.created_at, labels[r.status]
        refund_of = p.out_trade_no
    else:
        raise DomainError("NOT_FOUND", "未找到该收据")
    items = []
    for b in bills:
        items += [dict(bill=b.title, name=i.name, quantity=i.quantity, unit_price=i.unit_price, amount=i.amount,
                       insurance_amount=i.insurance_amount, self_amount=i.self_amount)
                  for i in s.scalars(select(BillItem).where(BillItem.bill_id == b.id).order_by(BillItem.id))]
    first = bills[0] if bills else None
    return dict(
        kind=kind, title="电子收据（缴费）" if kind == "payment" else "电子收据（退款）", number=number,
        refund_of=refund_of, amount=amount, at=at, status=status, items=items,
        hospital=s.get(Hospital, first.hospital_id).name if first else "",
        patient=s.get(Patient, first.patient_id).name if first else "",
        insurance_total=sum(i["insurance_amount"] for i in items) if kind == "payment" else 0,
        provider=p.provider, provider_txn_id=p.provider_txn_id,
    )


def yearly_summary(s: Session, account_id: int, patient_id: int, year: int) -> dict:
    """Per month: billed total, insurance paid, self-paid, refunded (local Asia/Shanghai months)."""
    if s.scalar(select(Patient.id).where(Patient.id == patient_id, Patient.account_id == account_id)) is None:
        raise DomainError("NOT_FOUND", "未找到该就诊人")
    months = defaultdict(lambda: dict(total=0, insurance_paid=0, self_paid=0, refunded=0))
    for b in s.scalars(select(Bill).where(Bill.patient_id == patient_id, Bill.status == "paid")):
        at = local(b.paid_at)
        if at.year == year:
            m = months[at.month]
            m["total"] += b.total
            m["insurance_paid"] += b.insurance_amount
            m["self_paid"] += b.paid_amount
    for r in s.scalars(select(Refund).join(Bill, Bill.id == Refund.bill_id).where(Bill.patient_id == patient_id)):
        at = local(r.created_at)
        if at.year == year:
            months[at.month]["refunded"] += r.amount
    rows = [dict(month=m, **months[m]) for m in range(1, 13)]
    tot = {k: sum(r[k] for r in rows) for k in ("total", "insurance_paid", "self_paid", "refunded")}
    return dict(patient_id=patient_id, year=year, months=rows, **tot,
                net_self_paid=tot["self_paid"] - tot["refunded"])


def _font():
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def receipt_pdf(data: dict) -> bytes:
    """A4 PDF with reportlab and its built-in Adobe CID font STSong-Light (no font file needed for CJK)."""
    from io import BytesIO

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from guahao.web.templating import cn_datetime, yuan

    font = _font()
    buf = BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setTitle(data["title"])
    w, h = A4
    y = h - 60
    c.setFont(font, 18)
    c.drawCentredString(w / 2, y, f"{data['hospital']} {data['title']}")
    c.setFont(font, 11)
    y -= 36
    lines = [f"收据号：{data['number']}", f"就诊人：{data['patient']}",
             f"时间：{cn_datetime(data['at']) if data['at'] else ''}", f"状态：{data['status']}"]
    if data["refund_of"]:
        lines.append(f"原支付单号：{data['refund_of']}")
    for line in lines:
        c.drawString(50, y, line)
        y -= 18
    y -= 8
    c.drawString(50, y, "项目")
    for x, label in ((260, "数量"), (320, "金额"), (400, "医保支付"), (480, "个人支付")):
        c.drawString(x, y, label)
    y -= 16
    for it in data["items"]:
        c.drawString(50, y, it["name"][:20])
        c.drawString(260, y, str(it["quantity"]))
        c.drawString(320, y, yuan(it["amount"]))
        c.drawString(400, y, yuan(it["insurance_amount"]))
        c.drawString(480, y, yuan(it["self_amount"]))
        y -= 16
    y -= 10
    c.setFont(font, 13)
    label = "本次支付" if data["kind"] == "payment" else "退款金额"
    c.drawString(50, y, f"{label}：{yuan(data['amount'])}")
    c.showPage()
    c.save()
    return buf.getvalue()
