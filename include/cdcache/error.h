/* One list of status codes for the whole project. Actions return 0 or one of these (negative). */
#ifndef CDCACHE_ERROR_H
#define CDCACHE_ERROR_H

#define CDC_ERRORS(X)                                                                              \
    X(CDC_OK, 0, "ok")                                                                             \
    X(CDC_EINVAL, -1, "invalid argument")                                                          \
    X(CDC_ENOTFOUND, -2, "not found")                                                              \
    X(CDC_ECONFLICT, -3, "version precondition failed")                                            \
    X(CDC_EDB, -4, "database error")                                                               \
    X(CDC_EREDIS, -5, "redis error")                                                               \
    X(CDC_EDECODE, -6, "undecodable event")                                                        \
    X(CDC_ETOOBIG, -7, "too large")                                                                \
    X(CDC_ECONFIG, -8, "bad configuration")                                                        \
    X(CDC_EIO, -9, "i/o error")                                                                    \
    X(CDC_EREJECTED, -10, "rejected")                                                              \
    X(CDC_ENOGROUP, -11, "consumer group missing")                                                 \
    X(CDC_ESCHEMA, -12, "the table changed")                                                       \
    X(CDC_EDUPLICATE, -13, "duplicate key")

enum cdc_error {
#define CDC_ERROR_ENUM(name, value, text) name = value,
    CDC_ERRORS(CDC_ERROR_ENUM)
#undef CDC_ERROR_ENUM
};

/* Returns a static string describing code; never NULL. */
const char *cdc_strerror(int code);

#endif
