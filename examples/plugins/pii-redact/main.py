"""PII redaction: masks e-mail addresses, phone numbers, card numbers and SSNs in the
request (inlet), in a whole reply (outlet) and in a streamed one (stream).

A stream arrives a token at a time, and an address may be split over several chunks
("bob", "@exam", "ple.com"), so the stream hook holds back the text after the last
word boundary (and a trailing run of digits, which may be a number still coming) and
sends it, masked, with a later chunk of the same reply; the chunk that finishes the
choice carries whatever is left.
"""

import re

from eldric import plugin

PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "card": re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "phone": re.compile(r"(?<![\w+])(?:\+?\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b"),
}
ORDER = ["email", "card", "ssn", "phone"]  # card before phone: a card is the longer run
# What may still be growing at the end: the last word, and the groups of digits before
# it (a phone number comes as "555", " 123", " 4567").
_TAIL = re.compile(r"(?:[\d()+.-]+ )*\S*$")


def mask(text: str) -> str:
    for kind in ORDER:
        if kind in plugin.valves["kinds"]:
            text = PATTERNS[kind].sub(plugin.valves["mask"].replace("{kind}", kind), text)
    return text


def found(text: str) -> list[str]:
    return [k for k in ORDER if k in plugin.valves["kinds"] and PATTERNS[k].search(text)]


def _texts(message: dict):
    """(getter, setter) for every text of a message: a string content or text parts."""
    content = message.get("content")
    if isinstance(content, str):
        yield content, lambda t: message.__setitem__("content", t)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"], lambda t, p=part: p.__setitem__("text", t)


@plugin.inlet
def inlet(body, user):
    for message in body.get("messages") or []:
        for text, put in _texts(message):
            if plugin.valves["refuse"] and (kinds := found(text)):
                plugin.refuse(f"the message contains personal data ({', '.join(kinds)})", 400)
            put(mask(text))
    return body


@plugin.outlet
def outlet(body, user):
    for choice in body.get("choices") or []:
        for text, put in _texts(choice.get("message") or {}):
            put(mask(text))
    return body


held: dict[tuple, str] = {}  # (reply id, choice index) -> text not sent yet


@plugin.stream
def stream(event, user):
    for choice in event.get("choices") or []:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = choice["delta"] = {}
        key = (event.get("id"), choice.get("index", 0))
        text = held.pop(key, "") + (delta.get("content") or "")
        if choice.get("finish_reason") is None and len(text) < 400:
            tail = _TAIL.search(text)
            cut = tail.start() if tail else len(text)
            text, held[key] = text[:cut], text[cut:]
        if text or "content" in delta:
            delta["content"] = mask(text)
    return event


plugin.run()
