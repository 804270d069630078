// Unit tests for the shared strict option parsers (pipeline/pl_cli_parse.c).
#include "pl_testutil.h"

#include <float.h>
#include <limits.h>

#include "pl_cli.h"

static void test_parse_long(void **state) {
    (void)state;
    long v = -1;
    assert_int_equal(pl_cli_parse_long("42", 1, 100, &v), 1);
    assert_int_equal(v, 42);
    assert_int_equal(pl_cli_parse_long("-3", -5, 5, &v), 1);
    assert_int_equal(v, -3);
    v = 7;
    assert_int_equal(pl_cli_parse_long("", 0, 10, &v), 0);         // empty
    assert_int_equal(pl_cli_parse_long("4x", 0, 10, &v), 0);       // trailing garbage
    assert_int_equal(pl_cli_parse_long("1.5", 0, 10, &v), 0);      // not an integer
    assert_int_equal(pl_cli_parse_long("11", 0, 10, &v), 0);       // above range
    assert_int_equal(pl_cli_parse_long("0", 1, 10, &v), 0);        // below range
    assert_int_equal(pl_cli_parse_long("99999999999999999999", LONG_MIN, LONG_MAX, &v), 0);   // overflow
    assert_int_equal(v, 7);                                         // untouched on failure
}

static void test_parse_double(void **state) {
    (void)state;
    double d = -1;
    assert_int_equal(pl_cli_parse_double("0.206", DBL_MIN, 10, &d), 1);
    assert_true(d == 0.206);
    assert_int_equal(pl_cli_parse_double("1e-3", 0, 1, &d), 1);
    assert_int_equal(pl_cli_parse_double("0", DBL_MIN, 10, &d), 0);   // positive required
    assert_int_equal(pl_cli_parse_double("nan", -DBL_MAX, DBL_MAX, &d), 0);
    assert_int_equal(pl_cli_parse_double("inf", -DBL_MAX, DBL_MAX, &d), 0);
    assert_int_equal(pl_cli_parse_double("1e999", -DBL_MAX, DBL_MAX, &d), 0);
    assert_int_equal(pl_cli_parse_double("2,5", 0, 10, &d), 0);
    assert_int_equal(pl_cli_parse_double("", 0, 10, &d), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_long), cmocka_unit_test(test_parse_double)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
