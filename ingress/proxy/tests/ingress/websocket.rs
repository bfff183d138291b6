use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{ingress, websocket_echo};

#[tokio::test]
async fn websocket_upgrade_echoes_both_ways() {
    let backend = websocket_echo().await;
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  ws: { backends: ["{ws}"] }
routes:
  - { id: ws, host: "*", path_prefix: /ws, pool: ws }
"#,
        &[("ws", backend.to_string())],
    )
    .await;
    let addr = ingress.local_addr("web").unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws/echo"), stream).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
    cancel.cancel();
}
