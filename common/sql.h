/*
 * SQL text for database spans: literals replaced by '?', the operation
 * and table names, and where a sqlcommenter comment may go. Pure
 * functions on caller buffers.
 */
#ifndef DYNOBS_COMMON_SQL_H
#define DYNOBS_COMMON_SQL_H

#include <stddef.h>

/* Copies q to out (capacity cap) with string, dollar-quoted and numeric
 * literals replaced by '?' and comments removed; returns the length
 * written (out is always NUL-terminated). */
size_t dynobs__sql_scrub(const char *q, char *out, size_t cap);

/* The first keyword, upper-cased (SELECT, INSERT, ...), or "" . */
void dynobs__sql_operation(const char *q, char *out, size_t cap);

/* The table after FROM (SELECT, DELETE), INTO (INSERT) or UPDATE, when it
 * is a plain (optionally schema-qualified) name; else "". */
void dynobs__sql_collection(const char *q, char *out, size_t cap);

/* 1 when q contains a comment ("--" or slash-star) outside literals:
 * sqlcommenter then leaves the statement alone. */
int dynobs__sql_has_comment(const char *q);

/* Where a sqlcommenter comment goes: before the trailing semicolon and
 * white space, if any, else at the end. */
size_t dynobs__sql_comment_at(const char *q, size_t len);

#endif
