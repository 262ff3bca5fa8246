/*
 * sessblob — what of a serialized TLS session wolfSSL's decoder must not
 * be given.
 *
 * Owns: the lengths inside a wolfSSL_i2d_SSL_SESSION blob that
 * wolfSSL_d2i_SSL_SESSION (5.5.4) copies by without checking them
 * against the fields they fill: the session ID's (ID_LEN, 32), the
 * peer chain's count of certificates (MAX_CHAIN_DEPTH, 9), the server
 * ID's (SERVER_ID_LEN, 20) and the session context's (ID_LEN). Too long,
 * each overruns the WOLFSSL_SESSION it is decoded into: the session ID
 * overwrites the peer certificate pointer, which is then freed. The
 * shared session cache serves blobs any worker may have written
 * (sesscache.h), so every blob is checked before it is decoded.
 */
#ifndef TLSOFFD_SESSBLOB_H
#define TLSOFFD_SESSBLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether wolfSSL_d2i_SSL_SESSION may read blob[0..len): its fields,
 * laid out as this wolfSSL's options.h says, end within len and hold no
 * length over its field's size. (wolfSSL also reads 4 bytes past a blob
 * cut inside the TLS 1.3 ticket's times.) */
bool sessblob_ok(const uint8_t *blob, size_t len);

#endif
