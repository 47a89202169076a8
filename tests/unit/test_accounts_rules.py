"""A1, A2, A6 as pure rules."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from guahao.accounts import rules
from guahao.accounts.rules import Relation
from guahao.errors import DomainError

TODAY = date(2026, 11, 29)


def make_id(area="110105", birth=date(1990, 5, 17), seq=123) -> str:
    body = f"{area}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


@given(st.dates(min_value=date(1900, 1, 1), max_value=TODAY), st.integers(0, 999))
def test_any_well_formed_id_is_accepted_with_its_birth_date_and_sex(birth, seq):
    number = make_id(birth=birth, seq=seq)
    info = rules.check_id_number(number, TODAY)
    assert info.birth_date == birth
    assert info.sex == ("M" if seq % 2 else "F")


@given(st.dates(min_value=date(1950, 1, 1), max_value=TODAY), st.integers(0, 999), st.integers(0, 16),
       st.integers(1, 9))
def test_any_single_digit_change_breaks_the_checksum(birth, seq, pos, delta):
    number = make_id(birth=birth, seq=seq)
    digit = (int(number[pos]) + delta) % 10
    changed = number[:pos] + str(digit) + number[pos + 1:]
    with pytest.raises(DomainError) as e:
        rules.check_id_number(changed, TODAY)
    assert e.value.code == "INVALID_ID_NUMBER"


def test_lowercase_x_and_whitespace_are_normalised():
    assert rules.check_id_number(" 11010519491231002x ", TODAY).number == "11010519491231002X"


@pytest.mark.parametrize("bad", ["", "1101051949123100", "11010519491231002Y", "110105194912310021",
                                 "11010520991231001X", "999999199001010011"])
def test_bad_id_numbers(bad):
    with pytest.raises(DomainError) as e:
        rules.check_id_number(bad, TODAY)
    assert e.value.code == "INVALID_ID_NUMBER"


def test_birth_date_in_the_future_is_refused():
    with pytest.raises(DomainError):
        rules.check_id_number(make_id(birth=date(2026, 12, 1)), TODAY)


@pytest.mark.parametrize("phone", ["13800138000", "19912345678", "15000000000"])
def test_valid_phones(phone):
    assert rules.check_phone(phone) == phone


@pytest.mark.parametrize("phone", ["12800138000", "1380013800", "138001380001", "+8613800138000", "abc"])
def test_invalid_phones(phone):
    with pytest.raises(DomainError) as e:
        rules.check_phone(phone)
    assert e.value.code == "INVALID_PHONE"


@pytest.mark.parametrize("name", ["张三", "欧阳娜娜", "阿依古丽·买买提", "Li Wei", "迪丽热巴·迪力木拉提"])
def test_valid_names(name):
    assert rules.check_name(name) == name


@pytest.mark.parametrize("name", ["张", "", "张三<script>", "Robert'); DROP TABLE", "·张三", "张" * 31, "张3"])
def test_invalid_names(name):
    with pytest.raises(DomainError) as e:
        rules.check_name(name)
    assert e.value.code == "INVALID_NAME"


def test_masks():
    assert rules.mask_id("110105194912311234") == "110105********1234"
    assert rules.mask_phone("13812345678") == "138****5678"
    assert rules.mask_name("张三") == "张*" and rules.mask_name("欧阳娜娜") == "欧**娜"


def test_at_most_five_patients_and_one_self():
    rules.check_can_add_patient([Relation.SELF] * 1 + [Relation.CHILD] * 3, Relation.PARENT)
    with pytest.raises(DomainError) as e:
        rules.check_can_add_patient([Relation.SELF] + [Relation.CHILD] * 4, Relation.PARENT)
    assert e.value.code == "PATIENT_LIMIT"
    with pytest.raises(DomainError) as e:
        rules.check_can_add_patient([Relation.SELF], Relation.SELF)
    assert e.value.code == "SELF_PATIENT_EXISTS"


def test_age():
    assert rules.age_on(date(2020, 11, 30), date(2026, 11, 29)) == 5
    assert rules.age_on(date(2020, 11, 29), date(2026, 11, 29)) == 6


def test_a_child_without_an_id_number_is_checked_by_birth_certificate_and_an_adult_guardian():
    guardian = make_id(birth=date(1990, 5, 17))
    child = rules.check_birth_certificate(" o110123456 ", date(2026, 3, 1), "F", guardian, Relation.CHILD, TODAY)
    assert (child.number, child.birth_date, child.sex, child.guardian.number) == (
        "O110123456", date(2026, 3, 1), "F", guardian)
    # Born today is a child; the day before the 16th birthday still is, the birthday itself not.
    assert rules.check_birth_certificate("O110123456", TODAY, "M", guardian, Relation.CHILD, TODAY)
    assert rules.check_birth_certificate("O110123456", date(2010, 11, 30), "M", guardian, Relation.CHILD, TODAY)

    def code(*args):
        with pytest.raises(DomainError) as e:
            rules.check_birth_certificate(*args, TODAY)
        return e.value.code, e.value.message
    ok = ("O110123456", date(2026, 3, 1), "F", guardian, Relation.CHILD)
    assert code(*ok[:4], Relation.PARENT)[0] == "VALIDATION_ERROR"  # only a child may come without ID
    for bad in ("O11012345", "0110123456", "OO10123456", "", "O1101234567"):
        assert code(bad, *ok[1:])[0] == "INVALID_BIRTH_CERTIFICATE", bad
    assert code(ok[0], date(2026, 11, 30), *ok[2:]) == ("VALIDATION_ERROR", "请填写出生医学证明上的出生日期")
    assert code(ok[0], None, *ok[2:])[0] == "VALIDATION_ERROR"
    assert "16" in code(ok[0], date(2010, 11, 29), *ok[2:])[1]
    assert code(*ok[:2], "X", *ok[3:])[0] == "VALIDATION_ERROR"
    assert code(*ok[:3], guardian[:-1] + ("0" if guardian[-1] != "0" else "1"), ok[4]) == (
        "INVALID_ID_NUMBER", "监护人身份证号码不正确")
    minor = make_id(birth=date(2009, 1, 1))
    assert "18" in code(*ok[:3], minor, ok[4])[1]


def test_birth_certificate_identities_live_apart_from_id_numbers_and_are_masked():
    assert rules.person_key(rules.ID_KIND_RESIDENT, "11010519491231002X") == "11010519491231002X"
    assert rules.person_key(rules.ID_KIND_BIRTH_CERT, "O110123456") == "BC:O110123456"
    assert rules.mask_birth_certificate("O110123456") == "O11****456"


def test_the_id_number_a_certificate_child_is_given_carries_the_certificates_birth_date_and_sex():
    born = date(2025, 6, 1)
    assert rules.check_id_for_certificate(make_id(birth=born, seq=11), born, "M", TODAY).number == make_id(birth=born, seq=11)
    for number, sex in ((make_id(birth=born, seq=12), "M"), (make_id(birth=date(2025, 6, 2), seq=11), "M")):
        with pytest.raises(DomainError) as e:
            rules.check_id_for_certificate(number, born, sex, TODAY)
        assert e.value.code == "VALIDATION_ERROR"
