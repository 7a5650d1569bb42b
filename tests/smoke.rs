mod common;
use chronik::*;
use common::*;

#[tokio::test]
async fn smoke() {
    let store = TestStore::start().await;
    let r = store.append_to_stream("a", ExpectedVersion::NoStream, events("E", 1, 3)).await.unwrap();
    assert_eq!((r.stream_version, r.first_position, r.last_position), (3, 1, 3));
    let read = store.read_stream_forward("a", 0, 10).await.unwrap();
    assert_eq!(read.len(), 3);
    store.shutdown().await.unwrap();
}
