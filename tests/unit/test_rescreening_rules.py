"""The rescreen under new screening rules and against a list shrunk too far
(fjordbank.service_layer.rescreening, fjordbank.domain.sanctions: RULES, shrunk_too_far).
Both found in review, 2026-12-06: a customer clear under the old rules was never screened
against an unchanged entry under the new ones (a list's version was its entries' alone);
and a truncated list file became the baseline in one run, forgetting every decision on the
entries it lacked, so the right file deployed again froze a cleared namesake again."""

from __future__ import annotations

import datetime as dt
from datetime import date

import pytest

from fjordbank.domain import sanctions as sanctions_module
from fjordbank.domain.sanctions import InvalidSanctionsList, SanctionedEntity, SanctionsList
from fjordbank.service_layer import onboarding, rescreening
from fjordbank.service_layer.rescreening import BASELINE, ListRefused, alert_path
from tests.support.memory import MemoryDocuments
from tests.support.use_cases import NOW, data, fixed_clock, seed
from tests.unit.test_rescreening import LISTED, SAMPLE, customer

AMONG_MORE = {"name": "Kari Sølvi Marte Ødegård Hansen", "birthDate": "1975-11-02", "idKind": "fnr"}


def at(hours: float) -> object:
    return fixed_clock(NOW + dt.timedelta(hours=hours))


def test_new_rules_screen_every_customer_again_against_the_whole_list(monkeypatch):
    docs = MemoryDocuments(fixed_clock())
    customer(docs, "kari", AMONG_MORE, ("97100000001", "open"))
    with monkeypatch.context() as old:  # the rules before the containment rule
        old.setattr(sanctions_module, "contained_similarity", lambda *_a, **_k: 0.0)
        old.setattr(sanctions_module, "RULES", "2026-11-01")
        old.setattr(rescreening, "RULES", "2026-11-01")
        before = SanctionsList(SAMPLE.entries)
        assert before.screen(AMONG_MORE["name"], date(1975, 11, 2)).outcome == "clear"
        first = rescreening.run(docs, before, clock=at(0))
        assert first.done and first.alerts == 0
        assert data(docs, BASELINE)["rules"] == "2026-11-01"
    # the same entries under today's rules: another version, the whole list walked
    today = SanctionsList(SAMPLE.entries)
    assert today.version != before.version and today.entry_keys() == before.entry_keys()
    again = rescreening.run(docs, today, clock=at(5))
    assert again.done and again.against == len(SAMPLE) and again.alerts == 1
    assert data(docs, alert_path("kari"))["status"] == "open"
    assert data(docs, BASELINE)["rules"] == sanctions_module.RULES
    # and the next list under the same rules is walked by what is new in it alone
    bigger = SanctionsList((*SAMPLE.entries, SanctionedEntity("1", ("Ola Fiktiv",), (date(1980, 1, 1),), (), None)))
    assert rescreening.run(docs, bigger, clock=at(6)).against == 1


def test_a_baseline_from_before_the_rules_were_recorded_is_walked_whole():
    docs = MemoryDocuments(fixed_clock())
    customer(docs, "kari", AMONG_MORE, ("97100000001", "open"))
    seed(docs, {BASELINE: {"version": "older", "entries": sorted(SAMPLE.entry_keys()), "forget": []}})
    assert rescreening.run(docs, SAMPLE, clock=at(1)).against == len(SAMPLE)


def test_a_list_shrunk_too_far_is_refused_and_forgets_nothing():
    docs = MemoryDocuments(fixed_clock())
    customer(docs, "namesake", LISTED, ("97100000001", "open"))
    rescreening.run(docs, SAMPLE, clock=at(0))
    assert data(docs, "accounts/97100000001")["status"] == "frozen"
    rescreening.decide(docs, "namesake", "clear", by="Kari Compliance", note="passport: another person")
    seen = data(docs, alert_path("namesake"))["seen"]

    wrong = SanctionsList(SAMPLE.entries[:1])  # 1 of 7: a truncated export parses fine
    with pytest.raises(ListRefused, match=f"1 entries against {len(SAMPLE)}.*acceptShrunk={wrong.version}"):
        rescreening.run(docs, wrong, clock=at(3))
    assert data(docs, BASELINE)["version"] == SAMPLE.version and data(docs, BASELINE)["forget"] == []
    assert "ListRefused" in data(docs, rescreening.LAST_RUN)["error"]
    assert f"acceptShrunk={wrong.version}" in data(docs, rescreening.LAST_RUN)["error"]  # the record says how
    assert data(docs, alert_path("namesake"))["seen"] == seen

    back = rescreening.run(docs, SAMPLE, clock=at(4))  # the right file again: nothing to do
    assert back.done and back.alerts == 0 and data(docs, "accounts/97100000001")["status"] == "open"


def test_a_list_that_really_shrank_is_taken_once_compliance_names_it():
    docs = MemoryDocuments(fixed_clock())
    rescreening.run(docs, SAMPLE, clock=at(0))
    smaller = SanctionsList(SAMPLE.entries[:3])
    with pytest.raises(ListRefused):
        rescreening.run(docs, smaller, clock=at(1))
    seed(docs, {BASELINE: {**(data(docs, BASELINE) or {}), "acceptShrunk": smaller.version}})
    assert rescreening.run(docs, smaller, clock=at(2)).done
    assert data(docs, BASELINE)["version"] == smaller.version
    assert "acceptShrunk" not in data(docs, BASELINE)  # for that list alone


def test_half_the_list_or_more_is_taken():
    docs = MemoryDocuments(fixed_clock())
    rescreening.run(docs, SAMPLE, clock=at(0))
    kept = (len(SAMPLE) + 1) // 2
    assert rescreening.run(docs, SanctionsList(SAMPLE.entries[:kept]), clock=at(1)).done


def test_a_list_file_with_no_entries_is_not_loaded(tmp_path):
    """onboarding (the functions) would approve everyone against it."""
    from tests.support.sanctions import SAMPLE_LIST

    empty = tmp_path / "empty.xml"
    text = SAMPLE_LIST.read_text()
    start, end = text.index("<sanctionEntity"), text.rindex("</sanctionEntity>") + len("</sanctionEntity>")
    empty.write_text(text[:start] + text[end:])
    with pytest.raises(onboarding.SanctionsListUnusable, match="no entries"):
        onboarding.load_sanctions(str(empty), docs=MemoryDocuments())
    broken = tmp_path / "broken.xml"
    broken.write_text("<export>")
    with pytest.raises(onboarding.SanctionsListUnusable, match="cannot be used") as unusable:
        onboarding.load_sanctions(str(broken), docs=MemoryDocuments())
    assert not isinstance(unusable.value, InvalidSanctionsList)  # no refusal of the applicant's
    assert len(onboarding.load_sanctions(str(SAMPLE_LIST), docs=MemoryDocuments())) == len(SAMPLE)


def test_onboarding_does_not_load_a_list_the_rescreen_refuses(tmp_path, caplog):
    """A truncated file (one entry of the baseline's seven) was refused by the rescreen and
    by the services' reader, and onboarding took it, approving the listed persons it had
    lost (found in review, 2026-12-07). It is refused the same way (one test:
    fjordbank.domain.rescreening.list_refused), and taken once compliance accepted it."""
    from tests.support.sanctions import SAMPLE_LIST

    docs = MemoryDocuments(fixed_clock())
    assert rescreening.run(docs, SAMPLE, clock=at(0)).done  # the baseline: the whole list
    text = SAMPLE_LIST.read_text()
    cut = text.index("</sanctionEntity>") + len("</sanctionEntity>")
    truncated = tmp_path / "truncated.xml"
    truncated.write_text(text[:cut] + "\n</export>\n")
    with pytest.raises(onboarding.SanctionsListUnusable, match=f"1 entries against {len(SAMPLE)}") as refused:
        onboarding.load_sanctions(str(truncated), docs=docs)
    assert not isinstance(refused.value, InvalidSanctionsList)  # the bank's error, not the applicant's
    assert "not loaded" in caplog.text
    short = SanctionsList.from_xml(truncated.read_bytes())
    with pytest.raises(ListRefused):  # the rescreen refuses it as well
        rescreening.run(docs, short, clock=at(1))
    seed(docs, {BASELINE: {**data(docs, BASELINE), "acceptShrunk": short.version}})
    assert len(onboarding.load_sanctions(str(truncated), docs=docs)) == 1
    assert len(onboarding.load_sanctions(str(SAMPLE_LIST), docs=docs)) == len(SAMPLE)
    assert len(onboarding.load_sanctions(str(truncated), docs=MemoryDocuments())) == 1  # no baseline yet


def test_an_acceptance_lapses_when_another_list_runs():
    """Accepted, then rolled back before it was walked: the acceptance stayed, and the same
    truncated file deployed a month later was taken without a new decision (found in
    review, 2026-12-06)."""
    docs = MemoryDocuments(fixed_clock())
    rescreening.run(docs, SAMPLE, clock=at(0))
    smaller = SanctionsList(SAMPLE.entries[:3])
    seed(docs, {BASELINE: {**(data(docs, BASELINE) or {}), "acceptShrunk": smaller.version}})
    assert rescreening.run(docs, SAMPLE, clock=at(1)).done  # rolled back to the baseline's list
    assert data(docs, BASELINE).get("acceptShrunk") is None
    with pytest.raises(ListRefused):
        rescreening.run(docs, smaller, clock=at(2))
