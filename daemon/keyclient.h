/*
 * keyclient — a worker's or the prober's side of the key processes: the
 * signer (tls.h) that has every handshake's signature made by a key
 * process.
 *
 * A channel (one end of a socket pair) is handed to the key processes
 * over the configuration's rendezvous socket the first time a signature
 * is needed, and whichever key process takes it answers on it from then
 * on. A channel that breaks (that key process died or was recycled) is
 * replaced and the request asked again, once; a signature that takes
 * longer than keys.timeout fails the handshake it belongs to.
 */
#ifndef TLSOFFD_KEYCLIENT_H
#define TLSOFFD_KEYCLIENT_H

#include "runtime.h"

/* Sets this process's signer, if rt's keys live in key processes. */
void keyclient_start(const struct runtime *rt);

#endif
