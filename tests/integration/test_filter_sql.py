"""The list statements filter.c generates, run on a real PostgreSQL: tests/test_filter.c's
`statements_run_on_postgresql` (16 queries over items, shop.customers, shop.orders and a table with quoted
names, paged with every byte bound, compared with the equivalent plain query). The unit suite has no
database, so that test runs here, in a throwaway database of the integration stack."""
import os
import subprocess

from harness import BUILD, ROOT

DB = "filtertest"


def psql(stack, sql, db="postgres"):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", stack.pg_port,
                        "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_generated_list_statements_page_through_the_right_rows(stack):
    psql(stack, f"DROP DATABASE IF EXISTS {DB}")
    psql(stack, f"CREATE DATABASE {DB}")
    try:
        env = dict(os.environ, CDCACHE_TEST_PG=f"postgresql://postgres@127.0.0.1:{stack.pg_port}/{DB}")
        r = subprocess.run([os.path.join(BUILD, "tests", "test_filter_pg"), "--filter",
                            "filter/statements_run_on_postgresql", "--verbose"],
                           env=env, capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "Skipping" not in out and "Passing: 1" in out, out
    finally:
        psql(stack, f"DROP DATABASE IF EXISTS {DB}")
