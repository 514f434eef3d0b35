"""The module chain for one MO (pure): who is opted out or in, what is answered, which app hears it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.inbound.chain import DEFAULT_HELP, DEFAULT_NOMATCH, DEFAULT_OPTOUT, AppTexts, MoContext, plan_mo
from engine.inbound.keywords import classify

PHONE = "+13472643707"
LIB = AppTexts(1, "library", help_text="Library help", optout_text="Library: unsubscribed", welcome_text="Welcome!")
CRM = AppTexts(2, "crm")
SHOP = AppTexts(3, "shop", nomatch_text="Text JOIN to join")


def _ctx(*apps: AppTexts, **kw: object) -> MoContext:
    return MoContext(PHONE, {a.id: a for a in apps}, **kw)  # type: ignore[arg-type]


def test_stop_opts_out_and_is_always_answered_once() -> None:
    plan = plan_mo(classify("Stop"), _ctx(LIB))
    assert (plan.outcome, plan.opt_out, plan.keyword) == ("opt_out", (1,), "STOP")
    assert [(r.app_id, r.body, r.compliance) for r in plan.replies] == [(1, "Library: unsubscribed", True)]
    assert not plan.deliver
    # A phone that never texted, an app with no opt-out text: still exactly one confirmation, the default.
    plan = plan_mo(classify("unsubscribe me"), _ctx(CRM))
    assert [r.body for r in plan.replies] == [DEFAULT_OPTOUT.replace("{app}", "crm")]


def test_where_the_carrier_answers_stop_itself_ours_is_not_sent_but_the_opt_out_holds() -> None:
    plan = plan_mo(classify("STOP"), _ctx(LIB, carrier_handles_optout=True))
    assert plan.opt_out == (1,) and plan.replies == ()


def test_stop_on_a_shared_smsc() -> None:
    apps = (LIB, CRM, SHOP)
    # No session: every app that texted the phone or was texted by it; one confirmation.
    plan = plan_mo(classify("STOP"), _ctx(*apps, conversed=frozenset({2, 3})))
    assert plan.opt_out == (2, 3) and len(plan.replies) == 1
    # With a session: that app only.
    assert plan_mo(classify("STOP"), _ctx(*apps, session_app=3, conversed=frozenset({2, 3}))).opt_out == (3,)
    # STOP ALL: every app on the SMSC, whatever the session.
    for body in ("STOP ALL", "stopall", "Stop all please"):
        plan = plan_mo(classify(body), _ctx(*apps, session_app=3))
        assert plan.opt_out == (1, 2, 3) and len(plan.replies) == 1, body
    # A stranger's STOP: nobody texted it, so nobody loses anything by blocking all.
    assert plan_mo(classify("STOP"), _ctx(*apps)).opt_out == (1, 2, 3)


def test_start_opts_back_in_and_confirms_only_when_the_app_has_a_text() -> None:
    plan = plan_mo(classify("START"), _ctx(LIB, blacklisted=frozenset({1})))
    assert (plan.outcome, plan.opt_in, plan.replies) == ("opt_in", (1,), ())
    with_text = AppTexts(1, "library", optin_text="Welcome back")
    plan = plan_mo(classify("unstop"), _ctx(with_text, blacklisted=frozenset({1})))
    assert [(r.body, r.compliance) for r in plan.replies] == [("Welcome back", False)]
    shared = plan_mo(classify("START"), _ctx(LIB, CRM, SHOP, blacklisted=frozenset({2})))
    assert shared.opt_in == (2,)


def test_help_is_always_answered_subscriber_or_not() -> None:
    for ctx in (_ctx(LIB), _ctx(LIB, blacklisted=frozenset({1})), _ctx(LIB, CRM, session_app=1)):
        plan = plan_mo(classify("help"), ctx)
        assert [(r.app_id, r.body, r.compliance) for r in plan.replies] == [(1, "Library help", True)]
    plan = plan_mo(classify("HELP me"), _ctx(CRM))
    assert [r.body for r in plan.replies] == [DEFAULT_HELP.replace("{app}", "crm")]


def test_routing_session_then_the_only_app_then_no_match() -> None:
    plan = plan_mo(classify("What time is storytime?"), _ctx(LIB))
    assert (plan.outcome, plan.app_id, plan.deliver, plan.new_contact) == ("routed", 1, True, True)
    assert [r.body for r in plan.replies] == ["Welcome!"]  # a first-time texter, once
    again = plan_mo(classify("And tomorrow?"), _ctx(LIB, contacts=frozenset({1})))
    assert again.replies == () and again.deliver
    plan = plan_mo(classify("hello"), _ctx(LIB, CRM, SHOP, session_app=2))
    assert (plan.app_id, plan.deliver) == (2, True)
    plan = plan_mo(classify("hello"), _ctx(SHOP, LIB, CRM))
    assert (plan.outcome, plan.deliver) == ("no_match", False)
    assert [r.body for r in plan.replies] == ["Text JOIN to join"]
    assert [r.body for r in plan_mo(classify("hi"), _ctx(CRM, SHOP)).replies] == [DEFAULT_NOMATCH]


def test_ambiguous_opt_out_words_with_text_are_routed_and_flagged() -> None:
    plan = plan_mo(classify("Cancel my hold"), _ctx(LIB, contacts=frozenset({1})))
    assert (plan.outcome, plan.opt_out, plan.deliver, plan.possible_opt_out) == ("routed", (), True, True)
    assert plan_mo(classify("Cancel"), _ctx(LIB)).opt_out == (1,)


@given(st.sampled_from(["STOP", "stop", "Stop.", "  STOP  ", "STOP!", "unsubscribe", "Opt out", "quit", "end",
                        "cancel", "re: stop", "STOPALL", "stop please", "STOP texting me"]),
       st.booleans(), st.booleans(), st.frozensets(st.sampled_from([1, 2, 3])))
def test_every_stop_gets_exactly_one_confirmation_unless_the_carrier_sends_it(
    body: str, shared: bool, carrier: bool, conversed: frozenset[int]
) -> None:
    apps = (LIB, CRM, SHOP) if shared else (LIB,)
    plan = plan_mo(classify(body), _ctx(*apps, conversed=conversed, carrier_handles_optout=carrier))
    assert plan.outcome == "opt_out" and plan.opt_out
    assert len(plan.replies) == (0 if carrier else 1)
    assert all(r.compliance for r in plan.replies)
