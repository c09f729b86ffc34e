#ifndef LBD_CLIBEVENT_SHIM_H
#define LBD_CLIBEVENT_SHIM_H
/* System headers first: event2/event-config.h defines _GNU_SOURCE, and glibc headers parsed
   after it differ from the same headers parsed elsewhere (notes/libevent-swift.md pitfall 1). */
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdint.h>
#include <errno.h>
#include <time.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <event2/keyvalq_struct.h>
#endif
