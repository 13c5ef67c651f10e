"""Strings from a store, shown as the text they are. A store takes any string from anyone who can write to it
(a title, a variant label, an error message naming a study), and Streamlit renders Markdown in subheaders,
captions and messages: an image link there would make every viewer's browser fetch an outside address."""

from __future__ import annotations

import re

MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def markdown_text(value: object) -> str:
    """`value` as Markdown that renders as exactly its text: every ASCII punctuation mark backslash-escaped (as
    CommonMark allows for any of them), line breaks as spaces."""
    return MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))
