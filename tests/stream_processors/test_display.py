"""Names made safe to show: every control character an escape, printable text of any script kept."""

import pytest

from stream_processors.display import printable, shorten


@pytest.mark.parametrize("raw, shown", [
    ("\x1b[1A\x1b[2K\rDECISION: CONTINUE\n", "\\x1b[1A\\x1b[2K\\rDECISION: CONTINUE\\n"),
    ("a\tb\x00c\x7fd", "a\\tb\\x00c\\x7fd"),
    ("c1\x85\x9b31m", "c1\\x85\\x9b31m"),  # NEL and CSI of the C1 range
    ("\u202eevil", "\\u202eevil"),           # a bidi override reorders what a terminal shows
    ("line\u2028break", "line\\u2028break"),
    ("lone\ud800surrogate\ufffe", "lone\\ud800surrogate\\ufffe"),
])
def test_control_characters_are_shown_as_escapes(raw, shown):
    assert printable(raw) == shown
    assert printable(raw).isprintable()


@pytest.mark.parametrize("name", ["income", "Zürich 東京 ✓", "back\\slash", "$x$ <b>&", ""])
def test_printable_names_are_kept_as_they_are(name):
    assert printable(name) == name


def test_any_value_is_shown_through_its_text():
    assert printable(None) == "None" and printable(3) == "3"


def test_a_long_name_is_cut_with_an_ellipsis_to_its_limit():
    assert shorten("K" * 1000, 24) == "K" * 23 + "…" and len(shorten("K" * 1000, 24)) == 24
    assert shorten("short", 24) == "short" and shorten("exactly", 7) == "exactly"
