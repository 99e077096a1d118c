"""Schemathesis hooks for tests/integration/test_openapi.py (loaded through SCHEMATHESIS_HOOKS). Each drops a
generated case that is not what Schemathesis labels it, never a server answer:

1. The coverage phase treats an operation's headers as a closed object and sends one extra, undeclared
   header (x-schemathesis-unknown-property) as negative data, expecting a 4xx. HTTP says the opposite: a
   recipient ignores header fields it does not recognise (RFC 9110, section 5.1), and every proxy and
   browser adds some.
2. Schemathesis 4.32.5's coverage phase sends `If-Match: 0` as a *positive* value, although it does not
   match the parameter's documented pattern (an entity tag `"<version>"` or `*`). The server's 400 is
   the right answer (a write must not run unconditionally because a precondition was unreadable), so
   positive cases whose If-Match is outside the pattern are dropped; negative ones stay.

Before each call (every phase), one hook fills in what depends on the database's state rather than on
the document, the way a client would; Schemathesis labels the case again afterwards, so a case these edits
make valid is judged as valid:

3. `after` with `order`: with `order` on a column other than the key, `after` is the opaque cursor the
   previous page's `next` carried (filter.h), which no schema can generate. `after` is left out when
   `order` is given.
4. shop.orders' `customer_id` is a foreign key: a generated uuid names no customer, and PostgreSQL's 400
   is right. Positive-looking values (a uuid) are replaced by the customer test_openapi.py created
   (CDCACHE_ST_CUSTOMER_ID).
5. inventory.items' CHECK constraints (price >= 0, name <> '': migrations/000004) are rules of the table
   that the document cannot carry (it describes a column by its type); PostgreSQL's 400 naming the
   column is right. A negative price becomes its absolute value and an empty name "x"."""
import os
import re

import schemathesis
from schemathesis import GenerationMode

UNKNOWN_HEADER = "x-schemathesis-unknown-property"
IF_MATCH = re.compile(r'^ *(\*|(W/)?"[0-9]+") *$')  # openapi.yaml, components/parameters/If-Match
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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


@schemathesis.hook
def before_call(context, case, kwargs):
    path = getattr(getattr(context, "operation", None), "path", "") or ""
    query = case.query if isinstance(case.query, dict) else None
    if query and "order" in query and "after" in query:
        del query["after"]
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    customer = os.environ.get("CDCACHE_ST_CUSTOMER_ID")
    if path.startswith("/orders") and customer and isinstance(body.get("customer_id"), str) and \
            UUID.match(body["customer_id"]):
        body["customer_id"] = customer
    if path.startswith("/items"):
        price = body.get("price")
        if isinstance(price, (int, float)) and not isinstance(price, bool) and price < 0:
            body["price"] = -price
        elif isinstance(price, str) and price.startswith("-"):
            body["price"] = price[1:]
        if body.get("name") == "":
            body["name"] = "x"
