#ifndef MESSENGER_CRABBITMQ_SHIM_H
#define MESSENGER_CRABBITMQ_SHIM_H

// librabbitmq-c 0.11 (Debian 12) installs flat headers; 0.12+ moved them under rabbitmq-c/.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#include <sys/time.h>

/// `amqp_login_with_properties` is variadic, which Swift cannot call: this fixes the SASL
/// mechanism to PLAIN and passes the user name and password through.
static inline amqp_rpc_reply_t messenger_amqp_login_plain(
    amqp_connection_state_t state, const char *vhost, int channel_max, int frame_max,
    int heartbeat, const amqp_table_t *client_properties, const char *user,
    const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat,
                                      client_properties, AMQP_SASL_METHOD_PLAIN, user,
                                      password);
}

#endif
