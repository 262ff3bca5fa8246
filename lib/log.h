/*
 * log — the daemon's own log (stderr, syslog or a file) and the access log.
 *
 * Owns: the destination, the level threshold, the access-log fd.
 * Every process logs through here; lines are written with one write(2) so
 * lines from several workers never interleave.
 */
#ifndef TLSOFFD_LOG_H
#define TLSOFFD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG, LOG_DEST_FILE };

/* Parses "error".."debug"; returns -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);
/* Parses a syslog facility name ("daemon", "local0".."local7", ...); -1 if unknown. */
int log_facility_parse(const char *name);

/* Starts logging to stderr at level info (what the program does before a
 * configuration is read). */
void log_init_stderr(const char *ident);

/*
 * Switches to the configured destination. dest is "stderr", "syslog" or a
 * file path; access is NULL (access lines go to the main log at info),
 * "" (off) or a file path. On failure returns -1 and writes a message
 * into err; the previous destination stays in force.
 *
 * A log file is opened relative to its directory, never through a
 * symbolic link, and only if it is a regular file with a single name: a
 * root process may be opening it in a directory another user can write.
 */
int log_open(const char *dest, int facility, int level, const char *access,
             char *err, size_t errlen);
/* Re-opens the file destinations (after log rotation). */
int log_reopen(char *err, size_t errlen);
void log_close(void);
/* Gives the log files that the last log_open or log_reopen created to the
 * user the workers run as, so that they can reopen them after rotation.
 * A file that already existed keeps its owner (a warning says so if it is
 * not uid's): it is the administrator's or logrotate's, and handing over
 * a file this process did not make is how a root-owned file would become
 * the workers'. */
void log_chown(uid_t uid, gid_t gid);

/* The process tag shown in every line: "master", "worker 3", ... */
void log_set_role(const char *role);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);
bool log_enabled(int level);
/* Whether the main log is standard error. */
bool log_to_stderr(void);

/*
 * One access-log line (without newline). Goes to the access log if one is
 * open, else to the main log (at info; at notice if failed). With the
 * access log off, only failed connections are logged, to the main log.
 */
void log_access(bool failed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
