"""Demo catalog: the 49 real hospitals of the bundled CSV with generated, labelled departments, doctors
and clinic sessions for the booking window around the clock's today. Idempotent."""

import csv
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guahao.catalog.models import Department, Doctor, Hospital
from guahao.clock import at_local
from guahao.release.rules import ReleasePolicy
from guahao.schedule import planning
from guahao.schedule.calendar import warn_once
from guahao.schedule.models import ScheduleTemplate

CSV = Path(__file__).resolve().parent.parent / "data" / "beijing_hospitals.csv"
DEMO = "（演示数据）"

CATEGORY_KEYWORDS = [
    ("妇产科", ("妇", "产")), ("儿科", ("儿",)), ("精神心理科", ("精神",)), ("肿瘤科", ("肿瘤", "放疗")),
    ("中医科", ("中医", "针灸", "正骨")), ("口腔科", ("口腔", "颌面")),
    ("五官科", ("眼", "耳", "鼻", "喉")), ("感染科", ("感染", "传染", "结核", "肝性")),
    ("外科", ("外科", "骨", "脊柱", "烧伤", "创伤", "整形", "美容", "肛肠", "脑外")),
    ("内科", ("内科", "内分泌", "呼吸", "心内", "心管", "心血管", "消化", "血液", "肾", "急诊", "ICU", "心脏")),
]
SPECIALTY = [
    (("口腔",), ["口腔颌面外科", "牙体牙髓科", "口腔修复科", "口腔正畸科"]),
    (("眼科医院",), ["白内障科", "青光眼科", "眼底病科"]),
    (("儿童",), ["小儿内科", "小儿外科", "小儿呼吸科", "儿童保健科"]),
    (("精神", "安定", "回龙观", "第六医院"), ["精神科", "心理咨询科", "睡眠医学科"]),
    (("肿瘤",), ["肿瘤内科", "胸部肿瘤外科", "放疗科"]),
    (("妇产",), ["妇科", "产科", "计划生育科"]),
    (("胸科",), ["结核科", "胸外科", "呼吸内科"]),
    (("地坛", "302"), ["感染科", "肝病科"]),
    (("整形外科医院",), ["整形外科", "美容外科"]),
    (("阜外",), ["心血管内科", "心脏外科", "高血压科"]),
]
GENERAL = ["心血管内科", "消化内科", "呼吸内科", "内分泌科", "普通外科", "骨科", "妇科", "眼科", "耳鼻咽喉科", "皮肤科"]
DISTRICTS = ["东城区", "西城区", "朝阳区", "海淀区", "丰台区", "石景山区", "通州区", "昌平区", "大兴区"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华玉兰文建国志红海波宁晨雪峰慧琳欣怡浩然子涵思远嘉"
TITLES = [("主任医师", 25), ("副主任医师", 16), ("主治医师", 9), ("医师", 4)]
FEES = {("主任医师", "特需号"): 30000, ("主任医师", "专家号"): 8000, ("副主任医师", "专家号"): 6000,
        "普通号": 5000}
CAPACITY = {"特需号": 6, "专家号": 12, "普通号": 20}


def category_of(name: str) -> str:
    for cat, words in CATEGORY_KEYWORDS:
        if any(w in name for w in words):
            return cat
    return "特色专科"


def read_csv() -> list[tuple[str, list[str]]]:
    with CSV.open(encoding="utf-8") as f:
        return [(r["hospital"].strip(), [d.strip() for d in r["flagship_departments"].split(";") if d.strip()])
                for r in csv.DictReader(f)]


def _clinics_for(name: str, flagship: list[str]) -> list[tuple[str, bool]]:
    extra = next((lst for words, lst in SPECIALTY if any(w in name for w in words)), GENERAL)
    out = [(d, True) for d in flagship]
    out += [(d, False) for d in extra if d not in flagship]
    return out


def _release_policy(rng: random.Random) -> ReleasePolicy:
    from datetime import time
    t = rng.choice([time(7, 0)] * 6 + [time(8, 0), time(8, 30), time(15, 0)])
    return ReleasePolicy(release_time=t, window_days=rng.choice([7] * 5 + [14]))


def load_catalog(s: Session) -> int:
    """Create the hospitals not yet present; returns how many were created."""
    existing = set(s.scalars(select(Hospital.name)))
    created = 0
    for idx, (name, flagship) in enumerate(read_csv()):
        if name in existing:
            continue
        rng = random.Random(name)
        policy = _release_policy(rng)
        h = Hospital(name=name, grade="三级甲等", district=rng.choice(DISTRICTS),
                     address=f"{DEMO}北京市某区某路{rng.randint(1, 200)}号",
                     phone=f"010-{rng.randint(60000000, 89999999)}",
                     intro=f"{name}，北京市三级甲等医院。王牌科室：{'、'.join(flagship)}。"
                           f"科室、医生与号源为系统生成的演示数据。",
                     is_demo=True, release_time=policy.release_time, window_days=policy.window_days)
        s.add(h)
        s.flush()
        cats: dict[str, Department] = {}
        for order, (dname, is_flag) in enumerate(_clinics_for(name, flagship)):
            cat_name = category_of(dname)
            if cat_name not in cats:
                cats[cat_name] = Department(hospital_id=h.id, name=cat_name, is_demo=True,
                                            sort_order=len(cats) if not is_flag else -1)
                s.add(cats[cat_name])
                s.flush()
            dept = Department(hospital_id=h.id, parent_id=cats[cat_name].id, name=dname, is_flagship=is_flag,
                              sort_order=order, is_demo=True,
                              location=f"门诊楼{rng.randint(1, 5)}层{dname}分诊台",
                              intro=f"{DEMO}{dname}" + ("，本院王牌科室" if is_flag else ""))
            s.add(dept)
            s.flush()
            used = set()
            for title, years in TITLES:
                while True:
                    dn = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice([1, 2])))
                    if dn not in used:
                        used.add(dn)
                        break
                s.add(Doctor(hospital_id=h.id, department_id=dept.id, name=dn, title=title,
                             specialties=f"{dname}常见病、多发病" + ("及疑难重症" if title == "主任医师" else ""),
                             years_in_practice=years + rng.randint(0, 8), is_demo=True,
                             intro=f"{DEMO}{title}，从事{dname}临床工作多年。"))
        created += 1
        if idx % 10 == 9:
            s.flush()
    s.flush()
    return created


def _number_type(doc: Doctor, flagship: bool) -> str:
    if doc.title == "主任医师":
        return "特需号" if flagship and doc.id % 2 == 0 else "专家号"
    if doc.title == "副主任医师":
        return "专家号"
    return "普通号"


def weekly_pattern(doc: Doctor) -> list[tuple[int, str]]:
    """Demo weekday × half-day pattern of a doctor (Monday–Friday), stable across runs."""
    rng = random.Random(f"{doc.hospital_id}:{doc.name}:{doc.department_id}")
    cells = [(wd, p) for wd in range(5) for p in ("AM", "PM")]
    return sorted(rng.sample(cells, rng.choice([3, 4, 5])))


def ensure_templates(s: Session, now: datetime) -> int:
    """Each demo doctor's weekly pattern as schedule templates (C2); doctors that have some keep them."""
    flag = {d.id: d.is_flagship for d in s.scalars(select(Department))}
    have = set(s.scalars(select(ScheduleTemplate.doctor_id).distinct()))
    rows = []
    for doc in s.scalars(select(Doctor).where(Doctor.is_demo).order_by(Doctor.id)):
        if doc.id in have:
            continue
        ntype = _number_type(doc, flag.get(doc.department_id, False))
        fee = FEES.get((doc.title, ntype), FEES["普通号"])
        for wd, period in weekly_pattern(doc):
            rows.append(dict(hospital_id=doc.hospital_id, department_id=doc.department_id, doctor_id=doc.id,
                             weekday=wd, period=period, number_type=ntype, capacity=CAPACITY[ntype], fee=fee,
                             online_bookable=True, active=True, created_at=now))
    for i in range(0, len(rows), 5000):
        s.execute(insert(ScheduleTemplate), rows[i:i + 5000])
    return len(rows)


def generate_sessions(s: Session, today: date, days_before: int = 1, extra_days: int = 1,
                      now: datetime | None = None) -> int:
    """Sessions and slots from the templates, by the same generator staff use, for every hospital from
    today−days_before to today+window+extra_days (holidays skipped, make-up workdays included)."""
    now = now or at_local(today, time(0, 0))
    ensure_templates(s, now)
    total = 0
    for h in list(s.scalars(select(Hospital).order_by(Hospital.id))):
        r = planning.generate(s, now, h, today - timedelta(days=days_before),
                              today + timedelta(days=h.window_days + extra_days))
        for w in r.warnings:
            warn_once(w)
        total += r.sessions
    return total
