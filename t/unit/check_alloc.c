#include "unit.h"

#include <setjmp.h>
#include <stdint.h>

#include "alloc.h"

static sigjmp_buf back;
static size_t failed_size;
static int failed_line;

static void jump_back(size_t size, const char *file, int line)
{
    (void)file;
    failed_size = size;
    failed_line = line;
    siglongjmp(back, 1);
}

START_TEST(allocates)
{
    char *s = xstrdup("tlsoffd");
    ck_assert_str_eq(s, "tlsoffd");
    char *t = xstrndup("tlsoffd", 3);
    ck_assert_str_eq(t, "tls");
    int *v = xcalloc(4, sizeof *v);
    ck_assert_int_eq(v[0] | v[3], 0);
    v = xreallocarray(v, 1000, sizeof *v);
    v[999] = 7;
    free(v);
    free(t);
    free(s);
    free(xmalloc(0));           /* a valid pointer, not NULL */
}
END_TEST

/* An injected failure reaches the handler with the size and call site. */
START_TEST(failure_calls_handler)
{
    alloc_set_oom_handler(jump_back);
    volatile int line = 0;
    if (sigsetjmp(back, 0) == 0) {
        alloc_fail_next();
        line = __LINE__; (void)xmalloc(123);
        ck_abort_msg("xmalloc returned after a failure");
    }
    ck_assert_uint_eq(failed_size, 123);
    ck_assert_int_eq(failed_line, line);
    /* One injection, one failure: the next call succeeds. */
    free(xmalloc(10));
    alloc_set_oom_handler(NULL);
}
END_TEST

START_TEST(every_member_fails)
{
    alloc_set_oom_handler(jump_back);
    for (int which = 0; which < 5; which++) {
        volatile int reached = 0;
        if (sigsetjmp(back, 0) == 0) {
            alloc_fail_next();
            switch (which) {
            case 0: (void)xcalloc(2, 8); break;
            case 1: (void)xrealloc(NULL, 8); break;
            case 2: (void)xstrdup("x"); break;
            case 3: (void)xstrndup("xy", 1); break;
            case 4: (void)xreallocarray(NULL, 2, 8); break;
            }
            reached = 1;
        }
        ck_assert_msg(!reached, "member %d returned after a failure", which);
    }
    alloc_set_oom_handler(NULL);
}
END_TEST

START_TEST(overflow_fails)
{
    alloc_set_oom_handler(jump_back);
    if (sigsetjmp(back, 0) == 0) {
        (void)xreallocarray(NULL, SIZE_MAX / 2, 4);
        ck_abort_msg("an overflowing size was allocated");
    }
    ck_assert_uint_eq(failed_size, SIZE_MAX);
    alloc_set_oom_handler(NULL);
}
END_TEST

/* A trigger file arms one failure, once, and is removed. */
START_TEST(trigger_file)
{
    char *path = unit_tempfile("");
    ck_assert(!alloc_fail_next_if(NULL));
    ck_assert(!alloc_fail_next_if(""));
    alloc_set_oom_handler(jump_back);
    volatile int reached = 0;
    if (sigsetjmp(back, 0) == 0) {
        ck_assert(alloc_fail_next_if(path));
        (void)xmalloc(5);
        reached = 1;
    }
    ck_assert(!reached);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert(!alloc_fail_next_if(path));           /* gone: no second failure */
    free(xmalloc(5));
    alloc_set_oom_handler(NULL);
    free(path);
}
END_TEST

/* The default handler exits with status 1 (the master's start-up policy). */
START_TEST(default_exits)
{
    alloc_fail_next();
    (void)xmalloc(1);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, allocates);
    tcase_add_test(tc, failure_calls_handler);
    tcase_add_test(tc, every_member_fails);
    tcase_add_test(tc, overflow_fails);
    tcase_add_test(tc, trigger_file);
    tcase_add_exit_test(tc, default_exits, 1);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(alloc_suite)
