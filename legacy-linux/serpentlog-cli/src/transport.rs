//! The client's transport over a hybrid-bridge channel pair: `<client>_req` (Linux writes,
//! queuing) and `<client>_resp` (Linux reads, queuing).

use rhlink::{Backoff, Bridge, Error, Receiver, Sender};
use serpentlog::client::Transport;

/// A channel pair to the broker, opened through rhlink.
pub struct ChannelTransport {
    requests: Sender,
    responses: Receiver,
    backoff: Backoff,
}

impl ChannelTransport {
    /// Opens `<client>_req` and `<client>_resp`.
    pub fn open(bridge: &Bridge, client: &str) -> Result<Self, Error> {
        let requests = bridge.open(&format!("{client}_req"))?.sender()?;
        let responses = bridge.open(&format!("{client}_resp"))?.receiver()?;
        Ok(Self { requests, responses, backoff: Backoff::new() })
    }
}

impl Transport for ChannelTransport {
    type Error = Error;

    fn frame_capacity(&self) -> usize {
        self.requests.msg_size().min(self.responses.msg_size())
    }

    fn try_send(&mut self, frame: &[u8]) -> Result<bool, Error> {
        match self.requests.try_send(frame) {
            Ok(()) => Ok(true),
            Err(Error::WouldBlock) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let received = self.responses.try_recv(buf)?;
        if received.is_some() {
            self.backoff = Backoff::new();
        }
        Ok(received.map(|r| r.len))
    }

    fn wait(&mut self) {
        self.backoff.wait();
    }
}
