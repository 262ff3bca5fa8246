/*
 * notify — systemd's service notification protocol (sd_notify(3)), without
 * libsystemd: datagrams of "KEY=value" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
 * Nothing happens without the variable. A failure to send is logged once
 * and is never fatal: tlsoffd serves whether systemd hears it or not.
 *
 * Only masters send. What each one says and when (tlsoffd(8), systemd):
 * start: MAINPID, READY=1, STATUS; HUP: RELOADING=1 and MONOTONIC_USEC,
 * then READY=1 and STATUS (the reload's outcome); USR2: the new master
 * sends its MAINPID with READY=1 once it serves, the old one only STATUS
 * before that; stop: STOPPING=1.
 */
#ifndef TLSOFFD_NOTIFY_H
#define TLSOFFD_NOTIFY_H

/* Serving (at start, or a new master after USR2): MAINPID=<our pid>,
 * READY=1 and STATUS=status. */
void notify_serving(const char *status);
/* A reload begins: RELOADING=1, MONOTONIC_USEC=<now> (systemd 253's
 * Type=notify-reload wants it) and STATUS=reloading. */
void notify_reloading(void);
/* A reload ended (well or not: the running configuration serves):
 * READY=1 and STATUS=status. */
void notify_ready(const char *status);
/* STATUS=status alone. */
void notify_status(const char *status);
/* A stop begins: STOPPING=1 and STATUS=status. */
void notify_stopping(const char *status);

#endif
