"""Schemathesis hooks for tests/integration/test_openapi.py (loaded through SCHEMATHESIS_HOOKS). Each drops a
generated case that is not what Schemathesis labels it, never a server answer:

1. The coverage phase treats an operation's headers as a closed object and sends one extra, undeclared
   header (x-schemathesis-unknown-property) as negative data, expecting a 4xx. HTTP says the opposite: a
   recipient ignores header fields it does not recognise (RFC 9110, section 5.1), and every proxy and
   browser adds some.
2. Schemathesis 4.32.5's coverage phase sends `If-Match: 0` as a *positive* value, although it does not
   match the parameter's documented pattern (an entity tag `"<version>"` or `*`). The server's 400 is
   the right answer (a write must not run unconditionally because a precondition was unreadable), so
   positive cases whose If-Match is outside the pattern are dropped; negative ones stay."""
import re

import schemathesis
from schemathesis import GenerationMode

UNKNOWN_HEADER = "x-schemathesis-unknown-property"
IF_MATCH = re.compile(r'^ *(\*|(W/)?"[0-9]+") *$')  # openapi.yaml, components/parameters/If-Match


@schemathesis.hook
def filter_case(context, case):
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    if UNKNOWN_HEADER in headers:
        return False
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode == GenerationMode.POSITIVE
    if positive and "if-match" in headers and not IF_MATCH.match(str(headers["if-match"])):
        return False
    return True
