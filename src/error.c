/* The text for each status code, generated from the same X-macro list as the codes. */
#include "cdcache/error.h"

const char *cdc_strerror(int code)
{
    switch (code) {
#define CDC_ERROR_TEXT(name, value, text)                                                          \
    case value:                                                                                    \
        return text;
        CDC_ERRORS(CDC_ERROR_TEXT)
#undef CDC_ERROR_TEXT
    }
    return "unknown error";
}
