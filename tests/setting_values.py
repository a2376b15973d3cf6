"""Hypothesis strategies for values of the registry's variables (unit and end-to-end tests)."""

from __future__ import annotations

import json
import string

from hypothesis import strategies as st

# Near-misses of every accepted form, so parsers meet more than random noise.
_words = st.sampled_from(
    [
        *("true", "false", "TRUE", "yes", "no", "on", "off", "1", "0", "debug", "INFO"),
        *("grpc", "http/protobuf", "http/json", "otlp", "console", "none", "always_on"),
        *("*", "=", ","),
    ]
)
_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"\A[+-]?\d{1,25}(\.\d{1,5})?\s?(ms|s|m|h|d|us)?\Z"),
    st.sampled_from(["9" * 5000, "1" + "0" * 400, "1e9", "0x10", "١٢", "²"]),
)
_urls = st.one_of(
    st.from_regex(r"\A(https?|ftp|file)?:?/{0,3}[a-z0-9.\-\[\]:@%]{0,40}(:\d{0,7})?(/\S{0,20})?\Z"),
    st.sampled_from(
        [
            "http://",
            "http://[::1",
            "http://host:port",
            "http://host:99999",
            "http://user:pw@host:4040/",
            "https://ex\u00e4mple.com",
            "http://a\uff0fb",
            "//host:4040",
        ]
    ),
)
_pairs = st.lists(
    st.tuples(st.text(max_size=8), st.sampled_from(["=", ":", ""]), st.text(max_size=8)).map(
        "".join
    ),
    max_size=4,
).map(",".join)
_json = st.one_of(
    st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers()), max_size=3),
    st.lists(st.integers(), max_size=2),
).map(json.dumps)
_huge = st.builds(
    lambda chunk, times: chunk * times, st.text(min_size=1, max_size=3), st.integers(1, 40000)
)

VALUES = st.one_of(
    st.text(),  # any unicode, control characters and line breaks included
    st.text(alphabet=string.printable),
    _words,
    _numbers,
    _urls,
    _pairs,
    _json,
    _huge,
)
