use futures::StreamExt as _;
use tonic_prost::ProstCodec;

use crate::grpc_echo::{self, CHAT, Echo, UNARY};
use crate::support::ingress;

#[tokio::test]
async fn grpc_unary_and_bidirectional_streaming_pass_end_to_end() {
    let backend = grpc_echo::start().await;
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - { name: api, listen: "127.0.0.1:0", protocol: http }
pools:
  api: { backends: ["{api}"] }
routes:
  - { id: api, host: "*", pool: api }
"#,
        &[("api", backend.to_string())],
    )
    .await;
    let mut client = grpc_echo::client(ingress.local_addr("api").unwrap()).await;

    client.ready().await.unwrap();
    let reply = client
        .unary(
            tonic::Request::new(Echo { text: "hello".into(), seq: 1 }),
            http::uri::PathAndQuery::from_static(UNARY),
            ProstCodec::<Echo, Echo>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply, Echo { text: "echo: hello".into(), seq: 1 });

    // Bidirectional: each message is answered before the next is sent, so the stream really
    // flows both ways through the proxy instead of being collected first.
    let (tx, rx) = tokio::sync::mpsc::channel::<Echo>(1);
    client.ready().await.unwrap();
    tx.send(Echo { text: "m0".into(), seq: 0 }).await.unwrap();
    let mut replies = client
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(CHAT),
            ProstCodec::<Echo, Echo>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    for seq in 0..50u32 {
        let reply = replies.next().await.unwrap().unwrap();
        assert_eq!(reply, Echo { text: format!("echo: m{seq}"), seq });
        if seq < 49 {
            tx.send(Echo { text: format!("m{}", seq + 1), seq: seq + 1 }).await.unwrap();
        }
    }
    drop(tx);
    assert!(replies.next().await.is_none(), "the stream ends with OK trailers");

    // A method the backend lacks: its status (from the trailers) reaches the client.
    client.ready().await.unwrap();
    let status = client
        .unary(
            tonic::Request::new(Echo::default()),
            http::uri::PathAndQuery::from_static("/trellis.test.Echo/Missing"),
            ProstCodec::<Echo, Echo>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    cancel.cancel();
}

#[tokio::test]
async fn grpc_without_a_backend_gets_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - { name: api, listen: "127.0.0.1:0", protocol: http }
pools:
  api: { backends: ["{api}"] }
routes:
  - { id: api, host: "*", pool: api }
"#,
        &[("api", closed.to_string())],
    )
    .await;
    let mut client = grpc_echo::client(ingress.local_addr("api").unwrap()).await;
    client.ready().await.unwrap();
    let status = client
        .unary(
            tonic::Request::new(Echo::default()),
            http::uri::PathAndQuery::from_static(UNARY),
            ProstCodec::<Echo, Echo>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    cancel.cancel();
}
