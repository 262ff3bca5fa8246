#include "unit.h"

#include <pthread.h>

#include "threadstack.h"

#define WANT (64 * 1024)

START_TEST(adds_a_constant)
{
    size_t extra = threadstack_size(0);
    ck_assert_uint_eq(threadstack_size(WANT), WANT + extra);
    /* libc has static TLS of its own (errno, ...). */
    ck_assert_uint_gt(extra, 0);
}
END_TEST

/* Touches n bytes of this thread's stack. */
static void *use_stack(void *arg)
{
    size_t n = *(size_t *)arg;
    volatile char *p = __builtin_alloca(n);
    for (size_t i = 0; i < n; i += 512)
        p[i] = (char)i;
    return NULL;
}

/* A thread given threadstack_size(WANT) can use most of WANT. */
START_TEST(thread_gets_its_stack)
{
    pthread_t t;
    pthread_attr_t a;
    size_t use = WANT * 3 / 4;
    pthread_attr_init(&a);
    ck_assert_int_eq(pthread_attr_setstacksize(&a, threadstack_size(WANT)), 0);
    ck_assert_int_eq(pthread_create(&t, &a, use_stack, &use), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("threadstack");
    TCase *tc = tcase_create("threadstack");
    tcase_add_test(tc, adds_a_constant);
    tcase_add_test(tc, thread_gets_its_stack);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
