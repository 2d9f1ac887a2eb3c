#ifndef MESSENGER_CHIREDIS_SHIM_H
#define MESSENGER_CHIREDIS_SHIM_H

// redisCommand is variadic: the Swift layer uses redisAppendCommandArgv / redisGetReply only.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#endif
