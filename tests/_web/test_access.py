"""The admin surface's parsers (access.py), called directly: each spelling
of Host and Origin parses to a value or is refused, and none raises."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regionproxy._web.access import AdminAccess, parse_host, parse_origin


def test_parsers_refuse_rather_than_raise():
    assert parse_host("[::1]:8080") == ("::1", 8080)
    assert parse_host("Example.COM.") == ("example.com", None)
    assert parse_origin("https://Example.com") == ("https", "example.com", 443)
    for value in ("", ":", "[", "[]", "[::1", "a:-1", "a b", "a/b", "\x00", "\xe9"):
        assert parse_host(value) is None, value
        assert parse_origin("http://" + value) is None, value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=60))
def test_any_header_text_parses_or_is_refused(text):
    # Both parsers are total: every string gives a value or None.
    parse_host(text)
    parse_origin(text)
    parse_origin("http://" + text)
    AdminAccess().allows({"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": text, "HTTP_AUTHORIZATION": text})
