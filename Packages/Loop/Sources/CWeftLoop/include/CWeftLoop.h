#pragma once
#include <features.h>
#include <liburing.h>
#include <sys/epoll.h>
int weft_loop_abi_version(void);
