/*
 * common/reason.h — the one reason-phrase table.
 */
#ifndef COMMON_REASON_H
#define COMMON_REASON_H

/** The reason phrase of an HTTP status edgecache sends (RFC 9110 15), "Unknown" for others.
 *  A static string. */
const char *reason_phrase(int status);

#endif
