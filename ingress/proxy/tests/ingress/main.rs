//! The ingress proxy against real backends and clients on loopback: routing over HTTP/1.1 and
//! HTTP/2, TLS by SNI, gRPC, WebSocket, TCP with the PROXY protocol, failures, reloads under
//! load, and hostile input. One binary for all of them (a link per file costs more than the
//! tests).

mod bad_input;
mod grpc;
mod grpc_echo;
mod http;
mod http1;
mod load;
mod support;
mod tcp;
mod threads;
mod tls;
mod upstream_tls;
mod websocket;
