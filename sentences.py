"""Cuts a reply that is still being written into sentences, each one ready to be spoken on its own.

Text arrives in small pieces (a model's tokens). `SentenceSplitter.feed` returns the sentences that the
text so far completes; `flush` returns what is left when the reply ends. A sentence ends at ".", "!", "?"
or an ellipsis followed by a space (closing quotes and brackets stay with it), except where a receptionist's
text uses a dot that ends nothing: titles ("Dr. Patel", "St. Louis"), "e.g.", times ("9 a.m. to 5 p.m."),
prices and numbers ("$45.50", "2.5"). A mark that ends the text so far and can only end a sentence ("!",
"?", a dot after a plain word) ends it at once, without waiting for the next token. After an initialism or
an ellipsis the next word decides: a capital starts a new sentence, a small letter carries on. A first
sentence too long to wait for is cut at a clause boundary (a comma, semicolon, colon or dash) once it has
`clause_words` words, or at a word boundary once it has `max_words`; a reply with no punctuation at all is
therefore spoken in pieces, never held to its end.
"""

from __future__ import annotations

import re

# Words after which a dot never ends the sentence: a name or a number follows.
_TITLES = "dr mr mrs ms mx prof st mt ft jr sr no nos vs approx appt dept ext tel fig vol ave blvd rd e.g i.e cf"
TITLES = frozenset(_TITLES.split())
# Words after which a dot ends the sentence only when a capital follows: "at 5 p.m. Call us" ends, "9 a.m. to" not.
_AMBIGUOUS = "a.m p.m etc u.s u.k inc ltd co corp"
AMBIGUOUS = frozenset(_AMBIGUOUS.split())
CLAUSE_WORDS = 12  # a first sentence this long is cut at its last clause boundary...
MAX_WORDS = 25  # ...and one this long with no boundary at the last whole word

_END = re.compile(r"(\.{3}|…|[.!?])+[\"'”’)\]]*(?=\s)")
_EAGER = re.compile(r"(?:[!?]|[^\W\d_]{2}\.)$")  # "?" or a dot after a word of letters, at the very end
_STRAYS = ".…\"'”’)] \t\n"
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[-–—](?=\s)")
_WORD_BEFORE = re.compile(r"(\S+?)$")


class SentenceSplitter:
    """Feed text as it comes; take sentences as soon as they are complete. One reply per splitter."""

    def __init__(self, clause_words: int = CLAUSE_WORDS, max_words: int = MAX_WORDS):
        self.clause_words, self.max_words = clause_words, max_words
        self._buffer = ""
        self._emitted = 0
        self._strays = False

    def feed(self, text: str) -> list[str]:
        """The sentences completed by `text` (possibly none), in order, stripped."""
        self._buffer += text
        if self._strays:  # after a sentence ended at once: a closing quote or the rest of an ellipsis
            self._buffer = self._buffer.lstrip(_STRAYS)
            self._strays = not self._buffer
        out = []
        while True:
            cut = self._next_cut()
            if cut is None:
                break
            out.append(self._take(cut))
        return [sentence for sentence in out if sentence]

    def flush(self) -> str:
        """The rest of the reply, once it is complete ("" when nothing is left)."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest

    @property
    def pending(self) -> str:
        """Text received and not yet returned as a sentence."""
        return self._buffer

    def _take(self, cut: int) -> str:
        sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
        self._emitted += bool(sentence)
        return sentence

    def _next_cut(self) -> int | None:
        for match in _END.finditer(self._buffer):
            verdict = self._ends_sentence(match)
            if verdict is None:
                return None  # cannot tell yet: wait for the next word
            if verdict:
                return match.end()
        eager = self._eager_cut()
        if eager is not None:
            return eager
        return self._long_cut() if self._emitted == 0 else None

    def _eager_cut(self) -> int | None:
        """A sentence mark that ends the text so far and cannot be anything else ends the sentence now.

        "!" and "?" always end one; "." does after a plain word ("nine.", not "Dr.", "p.m.", "45."). Waiting for
        the space that follows would cost one more token (25 ms at 40 tokens/s) on every sentence. Should the
        next token turn out to close a quote or continue an ellipsis, those marks are dropped: nothing a voice
        would say is lost.
        """
        if not _EAGER.search(self._buffer):
            return None
        if self._buffer.endswith("."):
            word = _WORD_BEFORE.search(self._buffer[:-1])
            before = word.group(1).lower().lstrip("\"'“‘([") if word else ""
            if not before.isalpha() or before in TITLES or before in AMBIGUOUS or _initialism(before):
                return None
        self._strays = True
        return len(self._buffer)

    def _ends_sentence(self, match: re.Match) -> bool | None:
        """True, False, or None when the next word (not yet written) decides."""
        marks = match.group().rstrip("\"'”’)]")
        word = _WORD_BEFORE.search(self._buffer[: match.start()])
        before = word.group(1).lower().lstrip("\"'“‘([") if word else ""
        if "!" in marks or "?" in marks:
            return True
        if marks == ".":
            if before in TITLES:
                return False
            if before not in AMBIGUOUS and not _initialism(before):
                return True
        following = self._buffer[match.end() :].lstrip()  # an initialism or an ellipsis: the next word decides
        if not following:
            return None
        return not following[0].islower()

    def _long_cut(self) -> int | None:
        """Where to cut a first sentence that is too long to wait for, if it is."""
        words = list(re.finditer(r"\S+(?=\s)", self._buffer))  # whole words only: one followed by a space
        if len(words) < self.clause_words:
            return None
        limit = words[-1].end()
        clauses = [m.end() for m in _CLAUSE.finditer(self._buffer, 0, limit + 1)]
        clauses = [end for end in clauses if len(self._buffer[:end].split()) >= self.clause_words // 2]
        if clauses:
            return clauses[-1]
        if len(words) >= self.max_words:
            return words[self.max_words - 1].end()
        return None


def _initialism(word: str) -> bool:
    """ "a.m", "u.s.a", "j": single letters with dots between them."""
    parts = word.split(".")
    return all(len(part) == 1 and part.isalpha() for part in parts)


def split_text(text: str, **limits: int) -> list[str]:
    """A whole text's sentences, as the streamed splitter would speak them."""
    splitter = SentenceSplitter(**limits)
    sentences = splitter.feed(text)
    rest = splitter.flush()
    return sentences + [rest] if rest else sentences
