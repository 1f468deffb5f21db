"""Payments from other banks on the wire (fjordbank.domain.pacs): the clearing house's
pacs.008 read, and the bank's pacs.004 returns written, as defensively as the outgoing files."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from fjordbank.domain import pacs
from fjordbank.domain.iso20022 import InvalidPaymentFile, Party

NOW = dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.UTC)
FJORDBANK = "FJORNOKK"
PAYEE = "12345678903"
PAYER = Party("Arbeidsgiver AS", "12032400009")


def transfer(n: int = 1, **changes) -> pacs.IncomingTransfer:
    fields = {
        "transaction_id": f"TX{n}",
        "end_to_end_id": f"LONN-2026-12-{n}",
        "amount_minor": 4_200_000 + n,
        "settlement_date": dt.date(2026, 12, 7),
        "debtor": PAYER,
        "debtor_agent_bic": "DNBANOKKXXX",
        "creditor_account": PAYEE,
        "creditor_name": "Kari Nordmann",
        "message": "Lønn desember",
    }
    return pacs.IncomingTransfer(**{**fields, **changes})


def file_of(*transfers: pacs.IncomingTransfer) -> bytes:
    return pacs.build_pacs008(pacs.IncomingBatch("NICS1", NOW, transfers), creditor_agent_bic=FJORDBANK)


def test_a_pacs008_reads_back_as_written():
    batch = pacs.IncomingBatch("NICS1", NOW, (transfer(1), transfer(2, message=None, kid="1234567890003")))
    assert pacs.parse_pacs008(pacs.build_pacs008(batch, creditor_agent_bic=FJORDBANK)) == batch


def test_a_credit_is_one_payment_by_its_bank_and_transaction_id():
    one = transfer(1)
    assert one.payment_id == transfer(1, amount_minor=5, end_to_end_id="other").payment_id  # the key decides
    assert one.payment_id != transfer(2).payment_id
    assert one.payment_id != transfer(1, debtor_agent_bic="NDEANOKKXXX").payment_id  # another bank's TX1
    assert one.payment_id == transfer(1, debtor_agent_bic="DNBANOKK").payment_id  # the same bank, BIC8
    assert one.payment_id != transfer(1, settlement_date=dt.date(2026, 12, 8)).payment_id  # a TxId used again
    assert one.payment_id.startswith(pacs.KEY_PREFIX) and len(one.payment_id) == 32


def _edit(xml: bytes, old: str, new: str) -> bytes:
    text = xml.decode()
    assert old in text
    return text.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", "NbOfTxs"),
        ('<TtlIntrBkSttlmAmt Ccy="NOK">42000.01', '<TtlIntrBkSttlmAmt Ccy="NOK">42000.02', "TtlIntrBkSttlmAmt"),
        ('<IntrBkSttlmAmt Ccy="NOK">', '<IntrBkSttlmAmt Ccy="EUR">', "NOK"),
        ("<TxId>TX1</TxId>", "", "TxId"),
        ("<BICFI>DNBANOKKXXX</BICFI>", "<Nm>DNB</Nm>", "debtor agent"),
        ("<SttlmMtd>CLRG</SttlmMtd>", "<SttlmMtd>INDA</SttlmMtd>", "settlement method"),
        ("<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>", "", "settlement date"),
        ("42000.01</IntrBkSttlmAmt>", "42000.015</IntrBkSttlmAmt>", "fractions"),
    ],
)
def test_a_file_that_is_not_consistent_is_refused_whole(old, new, why):
    with pytest.raises(InvalidPaymentFile, match=why):
        pacs.parse_pacs008(_edit(file_of(transfer(1)), old, new))


def test_a_doctype_is_refused_before_anything_is_read():
    hostile = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]>' + file_of(transfer(1)).split(b"?>", 1)[1]
    with pytest.raises(InvalidPaymentFile):
        pacs.parse_pacs008(hostile)


def test_one_transaction_twice_from_one_bank_in_a_file_is_refused():
    with pytest.raises(InvalidPaymentFile, match="twice"):
        pacs.IncomingBatch("NICS1", NOW, (transfer(1), transfer(1, amount_minor=9)))


def test_the_header_settlement_date_and_the_older_bic_element_are_read():
    xml = _edit(file_of(transfer(1)), "<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>", "")
    xml = _edit(xml, "<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>1</NbOfTxs><IntrBkSttlmDt>2026-12-08</IntrBkSttlmDt>")
    xml = _edit(xml, "<BICFI>DNBANOKKXXX</BICFI>", "<BIC>DNBANOKKXXX</BIC>")
    [read] = pacs.parse_pacs008(xml).transfers
    assert read.settlement_date == dt.date(2026, 12, 8) and read.debtor_agent_bic == "DNBANOKKXXX"


def test_a_bare_account_number_and_no_creditor_name_are_accepted():
    xml = _edit(
        file_of(transfer(1, creditor_name=None)), "<IBAN>NO7112345678903</IBAN>", "<Othr><Id>12345678903</Id></Othr>"
    )
    [read] = pacs.parse_pacs008(xml).transfers
    assert (read.creditor_account, read.creditor_name) == (PAYEE, None)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("<IBAN>NO7112345678903</IBAN>", "<IBAN>NO7112345678904</IBAN>", "AC01"),  # the account credited: no number
        ("<Nm>Arbeidsgiver AS</Nm>", "<Nm> </Nm>", "RR02"),  # no payer's name
        ("<IBAN>NO3512032400009</IBAN>", "<IBAN>SE4550000000058398257466</IBAN>", "RR01"),  # not a Norwegian one
    ],
)
def test_a_credit_this_bank_cannot_take_as_it_is_is_refused_on_its_own(old, new, reason):
    """One credit of a payroll file with a party this bank cannot take is sent back on its
    own: the file's other credits are taken (asked for again, the file would come back the
    same, and hold every other customer's salary with it)."""
    xml = _edit(file_of(transfer(1), transfer(2)), old, new)
    batch = pacs.parse_pacs008(xml)
    assert [t.transaction_id for t in batch.transfers] == ["TX2"]
    [refused] = batch.refused
    assert (refused.transaction_id, refused.reason_code, refused.amount_minor) == ("TX1", reason, 4_200_001)
    assert refused.payment_id == transfer(1).payment_id  # the same payment, however it is read
    assert "12345678904" not in refused.why  # logged: never a whole account number


def test_a_credit_with_no_payers_account_at_all_is_refused_on_its_own():
    xml = file_of(transfer(1), transfer(2)).decode()
    start = xml.index("<DbtrAcct>")
    end = xml.index("</DbtrAcct>") + len("</DbtrAcct>")
    [refused] = pacs.parse_pacs008((xml[:start] + xml[end:]).encode()).refused
    assert (refused.transaction_id, refused.reason_code) == ("TX1", "RR01")


def test_a_return_reads_back_as_written():
    returned = pacs.PaymentReturn(
        return_id="RT1",
        original_message_id="NICS1",
        original_end_to_end_id="LONN-2026-12-1",
        original_transaction_id="TX1",
        amount_minor=4_200_001,
        original_settlement_date=dt.date(2026, 12, 7),
        settlement_date=dt.date(2026, 12, 8),
        instructing_agent_bic=FJORDBANK,
        instructed_agent_bic="DNBANOKKXXX",
        reason_code=pacs.RETURN_CLOSED_ACCOUNT,
    )
    batch = pacs.ReturnBatch("RT1", NOW, (returned,))
    xml = pacs.build_pacs004(batch)
    assert b"<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>" in xml and b"<Cd>AC04</Cd>" in xml
    assert b"<InstdAgt>" in xml and b"<BICFI>DNBANOKKXXX</BICFI>" in xml  # the bank it goes back to
    assert pacs.parse_pacs004(xml) == batch
    with pytest.raises(InvalidPaymentFile):
        pacs.PaymentReturn(**{**_fields(returned), "reason_code": "closed"})


def _fields(r: pacs.PaymentReturn) -> dict:
    return {name: getattr(r, name) for name in r.__dataclass_fields__}


def test_amounts_are_whole_ore_and_only_nok():
    with pytest.raises(InvalidPaymentFile):
        transfer(1, amount_minor=0)
    with pytest.raises(InvalidPaymentFile):
        transfer(1, amount_minor=1.5)
    with pytest.raises(InvalidPaymentFile):
        replace(transfer(1), currency="SEK")


def test_a_file_for_another_bank_or_settling_far_from_its_creation_is_refused_whole():
    with pytest.raises(InvalidPaymentFile, match="another bank"):
        pacs.parse_pacs008(file_of(transfer(1)), bic="DNBANOKKXXX")
    assert pacs.parse_pacs008(file_of(transfer(1)), bic="FJORNOKKXXX").transfers  # BIC8 is the bank
    with pytest.raises(InvalidPaymentFile, match="days from the file"):
        pacs.parse_pacs008(file_of(transfer(1, settlement_date=dt.date(9999, 12, 31))))


def test_what_the_customer_is_shown_is_read_leniently_and_cleaned():
    """Two message lines, a reference that is no KID, an invoice reference, a line break and
    a right-to-left override: the credit is read, its text cleaned; nothing holds the money."""
    xml = file_of(transfer(1, message="Lønn"))
    xml = _edit(
        xml,
        "<Ustrd>Lønn</Ustrd>",
        "<Ustrd>Lønn&#10;desember</Ustrd><Ustrd>og feriepenger \u202egnp.exe</Ustrd>"
        "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>RF18539007547034</Ref></CdtrRefInf></Strd>",
    )
    [read] = pacs.parse_pacs008(xml).transfers
    assert read.message == "Lønn desember og feriepenger gnp.exe"
    assert read.kid is None  # not a KID: left out
    with_kid = _edit(file_of(transfer(1, kid="1234567890003")), "<Ustrd>Lønn desember</Ustrd>", "")
    assert pacs.parse_pacs008(with_kid).transfers[0].kid == "1234567890003"


def test_an_amount_that_echoes_an_account_number_is_masked_in_the_error():
    with pytest.raises(InvalidPaymentFile) as caught:
        pacs.parse_pacs008(_edit(file_of(transfer(1)), "42000.01</IntrBkSttlmAmt>", "NO7112345678903</IntrBkSttlmAmt>"))
    assert "12345678903" not in str(caught.value) and "8903" in str(caught.value)


def test_the_writer_checks_the_bank_it_writes_to():
    with pytest.raises(InvalidPaymentFile):
        pacs.build_pacs008(pacs.IncomingBatch("NICS1", NOW, (transfer(1),)), creditor_agent_bic="fjordbank!")


def test_a_creation_time_past_the_calendar_in_oslo_is_a_bad_file_not_a_crash():
    """A well-formed CreDtTm at the calendar's edge (9999-12-31T23:30Z is the year 10000 in
    Oslo) escaped as OverflowError, which parse_pacs008 promises never to raise."""
    created = dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.UTC)
    late = transfer(settlement_date=dt.date(9999, 12, 31))
    data = pacs.build_pacs008(pacs.IncomingBatch("NICS1", created, (late,)), creditor_agent_bic=FJORDBANK)
    with pytest.raises(InvalidPaymentFile, match="CreDtTm is out of range"):
        pacs.parse_pacs008(data)


# pacs.008.001.08 and pacs.004.001.09 type an agent's BIC as BICFIDec2014Identifier (ISO
# 9362:2014: any letter or digit in the bank code, any in the location); pain.001.001.03's
# older BICIdentifier refused such a BIC, and with it a schema-valid file of other banks'
# payments to customers here, whole (found in review, 2026-12-06).
BICS_2014 = ["AB1CNOKK", "DNBANO1K", "DNBANOKO", "DNBANO0K", "AB1CNOKK1XX"]
NOT_BICS = ["DNBANOK", "dnbanokk", "DNB@NOKK", "DNBAN1KK", "DNBANOKKXX", "DNBANOKK XXX", "DNBANØKK"]


def _return(**changes) -> pacs.PaymentReturn:
    fields = {
        "return_id": "RT1",
        "original_message_id": "NICS1",
        "original_end_to_end_id": "LONN-2026-12-1",
        "original_transaction_id": "TX1",
        "amount_minor": 4_200_001,
        "original_settlement_date": dt.date(2026, 12, 7),
        "settlement_date": dt.date(2026, 12, 8),
        "instructing_agent_bic": FJORDBANK,
        "instructed_agent_bic": "DNBANOKKXXX",
        "reason_code": pacs.RETURN_NO_ACCOUNT,
    }
    return pacs.PaymentReturn(**{**fields, **changes})


@pytest.mark.parametrize("bic", BICS_2014)
def test_a_bic_of_iso_9362_2014_is_read_from_a_pacs008_and_a_return_goes_back_to_it(bic):
    xml = _edit(file_of(transfer(1), transfer(2)), "<BICFI>DNBANOKKXXX</BICFI>", f"<BICFI>{bic}</BICFI>")
    batch = pacs.parse_pacs008(xml, bic=FJORDBANK)
    assert [t.debtor_agent_bic for t in batch.transfers] == [bic, "DNBANOKKXXX"] and batch.refused == ()
    # a credit of it this bank cannot take goes back to that bank on its own
    refused = pacs.parse_pacs008(_edit(xml, "<IBAN>NO7112345678903</IBAN>", "<IBAN>NO7112345678904</IBAN>"))
    assert [(r.transaction_id, r.debtor_agent_bic) for r in refused.refused] == [("TX1", bic)]
    returns = pacs.ReturnBatch("RT1", NOW, (_return(instructed_agent_bic=bic),))
    assert pacs.parse_pacs004(pacs.build_pacs004(returns)) == returns
    # the other direction: a clearing house file to a bank whose BIC is of that form
    to_it = pacs.IncomingBatch("NICS1", NOW, (transfer(1, debtor_agent_bic=bic),))
    assert pacs.parse_pacs008(pacs.build_pacs008(to_it, creditor_agent_bic=bic), bic=bic) == to_it


@pytest.mark.parametrize("bic", NOT_BICS)
def test_a_bic_that_is_not_one_still_refuses_the_file(bic):
    xml = _edit(file_of(transfer(1)), "<BICFI>DNBANOKKXXX</BICFI>", f"<BICFI>{bic}</BICFI>")
    with pytest.raises(InvalidPaymentFile, match="debtor agent BIC"):
        pacs.parse_pacs008(xml)
    with pytest.raises(InvalidPaymentFile, match="debtor agent BIC"):
        transfer(1, debtor_agent_bic=bic)
    with pytest.raises(InvalidPaymentFile, match="instructed agent BIC"):
        _return(instructed_agent_bic=bic)
    with pytest.raises(InvalidPaymentFile, match="creditor agent BIC"):
        pacs.build_pacs008(pacs.IncomingBatch("NICS1", NOW, (transfer(1),)), creditor_agent_bic=bic)


@pytest.mark.parametrize("zone", ["Z", "+01:00", "-05:30", "+14:00"])
def test_a_settlement_date_with_a_time_zone_is_the_date_written(zone):
    """ISODate is xs:date, which may carry a zone (Java's XML writers put one): a payroll
    file with one was refused whole, every credit in it held for an operator (found in
    review, 2026-12-07)."""
    xml = _edit(
        file_of(transfer(1)),
        "<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>",
        f"<IntrBkSttlmDt>2026-12-07{zone}</IntrBkSttlmDt>",
    )
    [read] = pacs.parse_pacs008(xml).transfers
    assert read.settlement_date == dt.date(2026, 12, 7)


@pytest.mark.parametrize("written", ["2026-12-07+15:00", "2026-12-07+01:60", "2026-12-07 Z", "2026-12-07+0100"])
def test_a_settlement_date_with_an_impossible_zone_still_refuses_the_file(written):
    xml = _edit(
        file_of(transfer(1)), "<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>", f"<IntrBkSttlmDt>{written}</IntrBkSttlmDt>"
    )
    with pytest.raises(InvalidPaymentFile, match="IntrBkSttlmDt"):
        pacs.parse_pacs008(xml)
