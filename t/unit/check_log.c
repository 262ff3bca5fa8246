#include "unit.h"

#include <fcntl.h>
#include <syslog.h>

#include "log.h"

static char err[256];

static char *slurp(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return buf;
}

START_TEST(names)
{
    ck_assert_int_eq(log_level_parse("error"), LOG_LVL_ERROR);
    ck_assert_int_eq(log_level_parse("debug"), LOG_LVL_DEBUG);
    ck_assert_int_eq(log_level_parse("verbose"), -1);
    ck_assert_str_eq(log_level_name(LOG_LVL_NOTICE), "notice");
    ck_assert_int_eq(log_facility_parse("local7"), LOG_LOCAL7);
    ck_assert_int_eq(log_facility_parse("daemon"), LOG_DAEMON);
    ck_assert_int_eq(log_facility_parse("kernel"), -1);
}
END_TEST

START_TEST(file_and_level)
{
    char *path = unit_tempfile("");
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_NOTICE, NULL, err, sizeof err), 0);
    log_set_role("worker 3");
    log_info("hidden %d", 1);
    log_notice("shown %d", 2);
    log_error("bad %s", "thing");
    char *text = slurp(path);
    ck_assert_ptr_null(strstr(text, "hidden"));
    ck_assert_ptr_nonnull(strstr(text, "worker 3 notice: shown 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "worker 3 error: bad thing\n"));
    ck_assert_ptr_nonnull(strstr(text, "tlsoffd["));
    ck_assert(log_enabled(LOG_LVL_WARNING));
    ck_assert(!log_enabled(LOG_LVL_DEBUG));
    log_close();
    unlink(path);
    free(path);
}
END_TEST

START_TEST(access_destinations)
{
    char *main_log = unit_tempfile(""), *acc = unit_tempfile("");
    /* A separate access log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, acc, err, sizeof err), 0);
    log_access(false, "client=%s outcome=ok", "a");
    ck_assert_ptr_nonnull(strstr(slurp(acc), "Z client=a outcome=ok\n"));
    ck_assert_ptr_null(strstr(slurp(main_log), "client=a"));
    /* Off: only failures reach the main log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, "", err, sizeof err), 0);
    log_access(false, "client=b outcome=ok");
    log_access(true, "client=c outcome=handshake-failed");
    ck_assert_ptr_null(strstr(slurp(main_log), "client=b"));
    ck_assert_ptr_nonnull(strstr(slurp(main_log), "notice: client=c outcome=handshake-failed"));
    /* Unset: everything to the main log. */
    ck_assert_int_eq(log_open(main_log, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), 0);
    log_access(false, "client=d outcome=ok");
    ck_assert_ptr_nonnull(strstr(slurp(main_log), "info: client=d outcome=ok"));
    log_close();
    unlink(main_log);
    unlink(acc);
    free(main_log);
    free(acc);
}
END_TEST

START_TEST(reopen_after_rotation)
{
    char *path = unit_tempfile(""), rotated[600];
    snprintf(rotated, sizeof rotated, "%s.1", path);
    ck_assert_int_eq(log_open(path, LOG_DAEMON, LOG_LVL_INFO, NULL, err, sizeof err), 0);
    log_notice("before");
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(log_reopen(err, sizeof err), 0);
    log_notice("after");
    ck_assert_ptr_nonnull(strstr(slurp(rotated), "before"));
    ck_assert_ptr_null(strstr(slurp(rotated), "after"));
    ck_assert_ptr_nonnull(strstr(slurp(path), "after"));
    log_close();
    unlink(path);
    unlink(rotated);
    free(path);
}
END_TEST

START_TEST(open_errors)
{
    ck_assert_int_eq(log_open("/nonexistent/dir/x.log", LOG_DAEMON, LOG_LVL_INFO, NULL, err,
                              sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open log file '/nonexistent/dir/x.log'"));
    ck_assert_int_eq(log_open("stderr", LOG_DAEMON, LOG_LVL_INFO, "/nonexistent/a.log", err,
                              sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/a.log"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, names);
    tcase_add_test(tc, file_and_level);
    tcase_add_test(tc, access_destinations);
    tcase_add_test(tc, reopen_after_rotation);
    tcase_add_test(tc, open_errors);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
