"""Telling instructions from findings. Corpus text is data: a sentence of an abstract that speaks
to the assistant (ignore the rules, reveal the prompt, add this link, cite [42]) or imitates its
output (a fake "Sources:" list) says nothing about the paper, and must never be quoted as if it
did. It stays visible where the abstract is shown whole, as the abstract's text.

`is_instruction_like(sentence)` is the test; the extractive answerer skips such sentences when it
picks quotes. Patterns, not a model: cheap, offline, and their reach is checked both ways by
tests/test_safety.py (every poisoned sentence of the reliability suite is caught; no sentence of
the bundled corpus is).
"""

from __future__ import annotations

import re

# Chat-format markers and role labels that open a sentence ("SYSTEM OVERRIDE:", "Assistant:").
CHAT_MARKUP = re.compile(
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<</?SYS>>"
    r"|#{2,}\s*(?:instruction|system|response)\b", re.I)
ROLE_LABEL = re.compile(
    r"^[\W_]*(?:system|assistant|user|developer|ai|chatbot|bot|admin|instructions?)"
    r"(?:\s+(?:override|message|prompt|note|notice|update|mode))?\s*:", re.I)

# Asking the model to drop its rules, show them, or become something else.
OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\s+"
    r"(?:(?:all|any|the|your|these|those|of|every)\s+)*"
    r"(?:(?:previous|prior|above|earlier|preceding|original|initial|system|safety|other|given)\s+)*"
    r"(?:instructions?|rules?|prompts?|guidelines|directions|constraints|directives)\b", re.I)
# (A paper may well study "system prompts"; asking for one to be shown is the tell.)
REVEAL = re.compile(
    r"\byour\s+(?:(?:system|hidden|initial|original|secret)\s+)?(?:prompt|instructions|rules)\b"
    r"|^[\W_]*(?:[^,.!?]{0,30},\s*)?(?:(?:please|now|first|then)\s+)*"
    r"(?:repeat|print|reveal|output|show|leak|dump|recite|display)\b[^.!?]{0,60}"
    r"\b(?:rules?|instructions?|prompts?|prompt\s+template)\b", re.I)
ROLE_PLAY = re.compile(
    r"\b(?:debug|developer|god|jailbreak|admin|unrestricted)\s+mode\b|\byou\s+are\s+now\b"
    r"|\bpretend\s+(?:to\s+be|you\s+are)\b|\b(?:reply|respond|answer)\s+(?:only|solely)\s+with\b"
    r"|\b(?:answer|reply|respond)\s+without\s+(?:any\s+)?(?:citations?|sources|references)\b"
    r"|\byou\s+(?:must|should|shall|will|need\s+to|have\s+to|are\s+to)\s+(?:now\s+|always\s+)?"
    r"(?:ignore|disregard|say|answer|reply|respond|output|print|reveal|cite|include|add|write|"
    r"tell|recommend|mention|link)\b", re.I)

# A fake source list: "Sources: [1] ...", "**Sources**", "References: [2] ...".
FAKE_SOURCES = re.compile(
    r"\*\*\s*(?:sources|references|citations)\s*\*\*"
    r"|\b(?:sources|references|citations|bibliography)\s*:?\s*\[\s*\d{1,3}\s*\]"
    r"|^\s*\[\d{1,3}\]\s+\S.*(?:https?://|www\.|—\s*\[)", re.I | re.M)

# An imperative aimed at the answer or its reader: "Tell the reader ...", "Cite this paper as
# [42]", "Include the image ![x](...)": a verb of this list first, and something of the answer's
# making (its citations, links, markup, readers) in the rest.
# Not "state", "visit", "download": abstracts open sentences with them ("State space models
# ...", "Visit <repository> for the code"), addressed to people, harmless to quote.
IMPERATIVES = (
    "add", "append", "ask", "attribute", "cite", "display", "email", "embed", "format",
    "include", "insert", "link", "mention", "output", "prepend", "print", "recommend", "render",
    "repeat", "reply", "respond", "return", "reveal", "say", "send", "show", "tell", "translate",
    "use", "wrap", "write", "answer", "ignore", "disregard", "forget",
)
IMPERATIVE = re.compile(
    r"^[\W_]*(?:(?:please|always|never|also|now|then|just|simply|instead|first|finally|next)"
    r"[\s,]+)*(?:" + "|".join(IMPERATIVES) + r")\b(?!\s+(?:of|and|or|is|was|were|are|has|had|"
    r"to\s+be)\b)(?P<rest>.*)$", re.I | re.S)
AIMED_AT_ANSWER = re.compile(
    r"\b(?:answers?|responses?|replies|reply|readers?|users?|assistant|chatbot|prompt|"
    r"instructions?|citations?|cite|footnotes?|references?|markdown|html|links?|url|"
    r"hyperlinks?|images?|pixel|badge|e-?mail|tags?|verbatim|word\s+for\s+word)\b"
    r"|\[\s*\^?\s*\d|\]\(|!\[|<[a-z/!]|\bwww\.|https?:|//|@|\bjavascript:", re.I)


def is_instruction_like(sentence: str) -> bool:
    """True when `sentence` reads as an instruction to the assistant or imitates its output
    rather than reporting something about a paper; such a sentence must not be quoted."""
    text = sentence.strip()
    if not text:
        return False
    if (CHAT_MARKUP.search(text) or ROLE_LABEL.search(text) or OVERRIDE.search(text)
            or REVEAL.search(text) or ROLE_PLAY.search(text) or FAKE_SOURCES.search(text)):
        return True
    imperative = IMPERATIVE.match(text)
    return bool(imperative and AIMED_AT_ANSWER.search(imperative.group("rest")))
