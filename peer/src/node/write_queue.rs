//! One connection's write queue: frames for its writer task, bounded in frames and bytes
//! per connection and in bytes over all connections (docs/operations.md, "Memory
//! limits"), and the writer that drains it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{WRITE_QUEUE, WRITE_QUEUE_BYTES, WRITE_QUEUES_BYTES};

/// The sending side of one connection's write queue, bounded twice: at most
/// [`WRITE_QUEUE`] frames and [`WRITE_QUEUE_BYTES`] bytes for this connection, and at most
/// [`WRITE_QUEUES_BYTES`] over all connections. A frame over a bound is dropped and
/// counted (`cvx_peer_frames_dropped_total`): the other side asks again (blocks), gets
/// the whole belief again within seconds, or is a client that does not read.
#[derive(Clone, Debug)]
pub(super) struct FrameTx {
    tx: mpsc::Sender<Arc<Vec<u8>>>,
    acct: Queued,
}

/// The bytes one connection's queue holds, and all queues together.
#[derive(Clone, Debug)]
pub(super) struct Queued {
    queued: Arc<AtomicUsize>,
    all: Arc<WriteBudget>,
}

impl Queued {
    /// `n` bytes left the queue (written, or dropped with it).
    fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
        self.all.bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

/// What all write queues hold together, and the frames dropped.
#[derive(Debug, Default)]
pub(super) struct WriteBudget {
    pub(super) bytes: AtomicUsize,
    pub(super) dropped: AtomicU64,
}

impl FrameTx {
    pub(super) fn channel(all: &Arc<WriteBudget>) -> (Self, mpsc::Receiver<Arc<Vec<u8>>>) {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let me = Self {
            tx,
            acct: Queued {
                queued: Arc::new(AtomicUsize::new(0)),
                all: Arc::clone(all),
            },
        };
        (me, rx)
    }

    /// Queue a frame unless a bound is reached (then it is dropped and counted).
    pub(super) fn try_send(&self, frame: Arc<Vec<u8>>) -> Result<(), ()> {
        let n = frame.len();
        let mine = self.acct.queued.fetch_add(n, Ordering::Relaxed) + n;
        let all = self.acct.all.bytes.fetch_add(n, Ordering::Relaxed) + n;
        // A frame always fits an empty queue (MAX_FRAME is below both bounds).
        let over = (mine > WRITE_QUEUE_BYTES && mine > n) || all > WRITE_QUEUES_BYTES;
        if over || self.tx.try_send(frame).is_err() {
            self.acct.written(n);
            self.acct.all.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        Ok(())
    }

    /// Queue a frame, waiting for room in the queue (the challenge proof: one frame).
    pub(super) async fn send(&self, frame: Arc<Vec<u8>>) {
        let n = frame.len();
        self.acct.queued.fetch_add(n, Ordering::Relaxed);
        self.acct.all.bytes.fetch_add(n, Ordering::Relaxed);
        if self.tx.send(frame).await.is_err() {
            self.acct.written(n);
        }
    }

    /// The byte counts, for the writer (which must not hold a sender: it ends when every
    /// sender is gone).
    pub(super) fn bytes(&self) -> Queued {
        self.acct.clone()
    }

    /// Frames queued now.
    pub(super) fn frames(&self) -> usize {
        WRITE_QUEUE - self.tx.capacity()
    }
}

/// One connection's writer: the queued frames, in order, until the socket fails or
/// every sender is gone; then the frames still queued are dropped and their bytes given
/// back to the budgets.
pub(super) async fn write_frames<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    mut wrx: mpsc::Receiver<Arc<Vec<u8>>>,
    budget: Queued,
) {
    while let Some(frame) = wrx.recv().await {
        budget.written(frame.len());
        if wr.write_all(&frame).await.is_err() {
            break;
        }
    }
    wrx.close();
    while let Ok(frame) = wrx.try_recv() {
        budget.written(frame.len());
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(n: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0; n])
    }

    #[test]
    fn a_write_queue_holds_at_most_its_bytes_and_takes_frames_again_once_written() {
        let all = Arc::new(WriteBudget::default());
        let (tx, mut rx) = FrameTx::channel(&all);
        // One frame of MAX_FRAME, shared: the bound counts bytes, not allocations.
        let big = frame(cvx_protocol::peer_wire::MAX_FRAME);
        let fit = WRITE_QUEUE_BYTES / big.len();
        for _ in 0..fit {
            assert!(tx.try_send(Arc::clone(&big)).is_ok());
        }
        assert!(
            tx.try_send(Arc::clone(&big)).is_err(),
            "over the byte bound"
        );
        assert_eq!(all.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(all.bytes.load(Ordering::Relaxed), WRITE_QUEUE_BYTES);
        assert_eq!(tx.frames(), fit);
        // The writer takes one: room for one more, and a small frame still goes.
        let f = rx.try_recv().unwrap();
        tx.acct.written(f.len());
        assert!(tx.try_send(Arc::clone(&big)).is_ok());
        assert!(tx.try_send(frame(100)).is_err(), "full again");
        // The count bound: small frames up to WRITE_QUEUE.
        let (tx, _rx) = FrameTx::channel(&all);
        let small = frame(10);
        let ok = (0..WRITE_QUEUE + 10)
            .filter(|_| tx.try_send(Arc::clone(&small)).is_ok())
            .count();
        assert_eq!(ok, WRITE_QUEUE);
    }

    #[test]
    fn all_write_queues_together_hold_at_most_the_shared_bound() {
        let all = Arc::new(WriteBudget::default());
        let big = frame(cvx_protocol::peer_wire::MAX_FRAME);
        let mut queues = Vec::new();
        let mut sent = 0;
        for _ in 0..2 * WRITE_QUEUES_BYTES / WRITE_QUEUE_BYTES {
            let (tx, rx) = FrameTx::channel(&all);
            while tx.try_send(Arc::clone(&big)).is_ok() {
                sent += big.len();
            }
            queues.push((tx, rx));
        }
        assert_eq!(sent, WRITE_QUEUES_BYTES);
        assert_eq!(all.bytes.load(Ordering::Relaxed), WRITE_QUEUES_BYTES);
    }

    #[tokio::test]
    async fn a_closed_connection_gives_its_queued_bytes_back() {
        let all = Arc::new(WriteBudget::default());
        let (tx, rx) = FrameTx::channel(&all);
        for _ in 0..100 {
            tx.try_send(frame(1000)).unwrap();
        }
        // A socket that fails at once: the writer stops, the queue is dropped.
        struct Broken;
        impl tokio::io::AsyncWrite for Broken {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        write_frames(Broken, rx, tx.acct.clone()).await;
        assert_eq!(all.bytes.load(Ordering::Relaxed), 0);
        assert!(tx.try_send(frame(10)).is_err(), "closed");
        assert_eq!(all.bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_writer_ends_when_the_connection_and_the_loop_drop_their_senders() {
        let all = Arc::new(WriteBudget::default());
        let (tx, rx) = FrameTx::channel(&all);
        let writer = tokio::spawn(write_frames(tokio::io::sink(), rx, tx.acct.clone()));
        tx.try_send(frame(100)).unwrap();
        let loop_side = tx.clone();
        drop(tx);
        drop(loop_side);
        // The socket is shut down (the other side sees the close): the task ends.
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the writer ends once no sender is left")
            .unwrap();
        assert_eq!(all.bytes.load(Ordering::Relaxed), 0);
    }
}
