"""The module chain for one MO (pure): opt-out → opt-in → help → welcome → routing.

Input: how the body was classified (:mod:`engine.inbound.keywords`) and what the database knows about the
phone and the SMSC it texted (:class:`MoContext`). Output: a :class:`Plan` — whose blacklist changes, which
confirmations and replies go out (from the DID the phone texted), and which app hears the message. The
processor applies a plan in one transaction with the MO's 'done' mark, so each MO's effects happen once.

Compliance rules that hold for every plan: a STOP is always answered with exactly one confirmation (none of
ours when the carrier account answers STOP itself), also to a phone that never texted before; a HELP is
always answered, subscriber or not; neither is ever an error or silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from engine.inbound.keywords import Classified, KeywordIndex

__all__ = [
    "DEFAULT_HELP",
    "DEFAULT_NOMATCH",
    "DEFAULT_OPTIN",
    "DEFAULT_OPTOUT",
    "AppTexts",
    "MoContext",
    "Plan",
    "Reply",
    "plan_mo",
]

DEFAULT_OPTOUT: Final = "You are unsubscribed and will receive no more messages from {app}. Reply START to resubscribe."
DEFAULT_OPTIN: Final = "You are subscribed to {app} again. Reply HELP for help, STOP to unsubscribe."
DEFAULT_HELP: Final = "{app}: reply STOP to unsubscribe, START to resubscribe. Msg & data rates may apply."
DEFAULT_NOMATCH: Final = "Sorry, we could not match your message to a service. Reply HELP for help."
DEFAULT_CONFIRM_REQUEST: Final = "Reply YES to confirm your subscription to {app}. Reply STOP to opt out."
DEFAULT_CONFIRMED: Final = "You are subscribed to {app}. Reply HELP for help, STOP to unsubscribe."

Outcome = Literal["opt_out", "opt_in", "confirmed", "help", "routed", "no_match"]


@dataclass(frozen=True, slots=True)
class AppTexts:
    """An application on the SMSC the phone texted, with its module texts (None: not set)."""

    id: int
    name: str
    help_text: str | None = None
    welcome_text: str | None = None
    optout_text: str | None = None
    optin_text: str | None = None
    nomatch_text: str | None = None


@dataclass(frozen=True, slots=True)
class MoContext:
    """What the database knows when an MO is handled."""

    phone: str
    apps: Mapping[int, AppTexts]  # the apps on the SMSC of the DID texted, by id (ordered: the first is the owner)
    session_app: int | None = None  # an open, unexpired session of the phone with one of them
    conversed: frozenset[int] = frozenset()  # apps that texted the phone or were texted by it
    blacklisted: frozenset[int] = frozenset()  # apps the phone opted out of
    contacts: frozenset[int] = frozenset()  # apps the phone texted before (no welcome text again)
    carrier_handles_optout: bool = False
    keywords: KeywordIndex | None = None  # the routing keywords of the SMSC
    body: str = ""  # the MO as received (keywords are matched on it)
    pending: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # app -> tags awaiting the phone's YES
    last_tag: Mapping[int, str] = field(default_factory=dict)  # app -> tag of its latest tagged MT to the phone


@dataclass(frozen=True, slots=True)
class Reply:
    """A text the engine sends back from the DID the phone texted.

    *compliance*: the engine's own STOP/HELP answer, which reaches a blacklisted phone; anything else obeys
    every admission rule like any message.
    """

    app_id: int
    body: str
    compliance: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    outcome: Outcome
    app_id: int | None  # the app the MO was handled for (its record, its incoming_message)
    keyword: str | None = None
    opt_out: tuple[int, ...] = ()  # apps to blacklist the phone for (and close its sessions with)
    opt_in: tuple[int, ...] = ()  # apps to take the phone off the blacklist of
    replies: tuple[Reply, ...] = ()
    deliver: bool = False  # send incoming_message to app_id's gateway
    possible_opt_out: bool = False  # an ambiguous opt-out word with more text: routed, flagged for review
    new_contact: bool = False  # the phone texts app_id for the first time
    session: bool = False  # open (or extend) the phone's session with app_id
    subscribe: tuple[str, ...] = ()  # tags to subscribe the phone to for app_id ('' = no tag)
    await_confirmation: tuple[str, ...] | None = None  # a double opt-in: these tags once the phone says YES
    confirmed: bool = False  # the phone's YES: its pending opt-in for app_id is done
    tag: str | None = None  # the tag of the MT this MO answers
    notes: tuple[str, ...] = field(default=())


def _text(template: str | None, default: str, app: AppTexts) -> str:
    return (template or default).replace("{app}", app.name)


def _owner(ctx: MoContext) -> AppTexts | None:
    """The app an MO without a session belongs to when the SMSC has exactly one."""
    if len(ctx.apps) == 1:
        return next(iter(ctx.apps.values()))
    return None


def _speaker(ctx: MoContext) -> AppTexts | None:
    """The app whose texts answer a STOP/HELP: the session's, else the owner, else one the phone talked to,
    else the SMSC's first app."""
    if ctx.session_app is not None and ctx.session_app in ctx.apps:
        return ctx.apps[ctx.session_app]
    owner = _owner(ctx)
    if owner is not None:
        return owner
    for app_id in ctx.apps:
        if app_id in ctx.conversed:
            return ctx.apps[app_id]
    return next(iter(ctx.apps.values()), None)


def _opt_out_targets(classified: Classified, ctx: MoContext) -> tuple[int, ...]:
    """STOP ALL: every app on the SMSC; with a session: that app; a dedicated SMSC: its app; a shared one: every
    app that texted the phone or was texted by it (none: all of them — a stranger's STOP blocks everyone)."""
    if classified.all_apps:
        return tuple(ctx.apps)
    if ctx.session_app is not None and ctx.session_app in ctx.apps:
        return (ctx.session_app,)
    talked = tuple(a for a in ctx.apps if a in ctx.conversed)
    return talked or tuple(ctx.apps)


def _opt_in_targets(ctx: MoContext) -> tuple[int, ...]:
    if ctx.session_app is not None and ctx.session_app in ctx.apps:
        return (ctx.session_app,)
    listed = tuple(a for a in ctx.apps if a in ctx.blacklisted)
    return listed or tuple(ctx.apps)


def plan_mo(classified: Classified, ctx: MoContext) -> Plan:
    """The chain's decision for one MO (see the module docstring)."""
    speaker = _speaker(ctx)
    if speaker is None:  # a DID whose SMSC has no app: nobody to route to, nothing to say
        return Plan("no_match", None, notes=("the SMSC has no application",))
    if classified.intent == "opt_out":
        targets = _opt_out_targets(classified, ctx)
        replies = () if ctx.carrier_handles_optout else (
            Reply(speaker.id, _text(speaker.optout_text, DEFAULT_OPTOUT, speaker), compliance=True),
        )
        return Plan("opt_out", speaker.id, classified.keyword, opt_out=targets, replies=replies)
    if classified.intent == "confirm":
        app_id = next((a for a in ctx.pending if a in ctx.apps), speaker.id)
        app = ctx.apps[app_id]
        tags = ctx.pending.get(app_id, ()) or ("",)
        reply = Reply(app_id, _text(app.optin_text, DEFAULT_CONFIRMED, app))
        return Plan("confirmed", app_id, classified.keyword, opt_in=(app_id,) if app_id in ctx.blacklisted else (),
                    replies=(reply,), subscribe=tags, confirmed=True)
    if classified.intent == "opt_in":
        targets = _opt_in_targets(ctx)
        replies = (Reply(speaker.id, _text(speaker.optin_text, DEFAULT_OPTIN, speaker)),) if speaker.optin_text else ()
        return Plan("opt_in", speaker.id, classified.keyword, opt_in=targets, replies=replies)
    if classified.intent == "help":
        reply = Reply(speaker.id, _text(speaker.help_text, DEFAULT_HELP, speaker), compliance=True)
        return Plan("help", speaker.id, classified.keyword, replies=(reply,))
    return _route(classified, ctx, speaker)


def _route(classified: Classified, ctx: MoContext, speaker: AppTexts) -> Plan:
    """An open session → its app; else a keyword → its app (session, subscription, auto-response); else the SMSC's
    only app; else the no-match text."""
    flagged = classified.possible_opt_out
    if ctx.session_app is not None and ctx.session_app in ctx.apps:
        return _routed(ctx, ctx.apps[ctx.session_app], flagged, session=True)
    rule = ctx.keywords.match(ctx.body) if ctx.keywords is not None else None
    if rule is not None and rule.app_id in ctx.apps:
        app = ctx.apps[rule.app_id]
        replies: list[Reply] = []
        if rule.auto_response:
            replies.append(Reply(app.id, rule.auto_response))
        pending: tuple[str, ...] | None = None
        subscribe: tuple[str, ...] = ()
        if rule.auto_subscribe and rule.double_opt_in:
            pending = rule.tags
            replies.append(Reply(app.id, _text(None, DEFAULT_CONFIRM_REQUEST, app)))
        elif rule.auto_subscribe:
            subscribe = rule.tags or ("",)
        return _routed(ctx, app, flagged, session=rule.start_session, keyword=rule.keyword, extra=tuple(replies),
                       subscribe=subscribe, await_confirmation=pending)
    owner = _owner(ctx)
    if owner is not None:
        return _routed(ctx, owner, flagged)
    nomatch = Reply(speaker.id, _text(speaker.nomatch_text, DEFAULT_NOMATCH, speaker))
    return Plan("no_match", speaker.id, replies=(nomatch,), possible_opt_out=flagged)


def _routed(
    ctx: MoContext, app: AppTexts, flagged: bool, *, session: bool = False, keyword: str | None = None,
    extra: tuple[Reply, ...] = (), subscribe: tuple[str, ...] = (), await_confirmation: tuple[str, ...] | None = None,
) -> Plan:
    new = app.id not in ctx.contacts
    welcome = (Reply(app.id, _text(app.welcome_text, "", app)),) if new and app.welcome_text else ()
    return Plan("routed", app.id, keyword, replies=welcome + extra, deliver=True, possible_opt_out=flagged,
                new_contact=new, session=session, subscribe=subscribe, await_confirmation=await_confirmation,
                tag=ctx.last_tag.get(app.id))
