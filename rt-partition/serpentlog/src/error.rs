//! The errors a SerpentLog client can see. The set is small on purpose; each value is
//! also its wire code (`u16`), and 0 is success on the wire.

/// An error the broker returns for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The topic is not declared in the broker's configuration.
    UnknownTopic = 1,
    /// The partition index is not below the topic's partition count.
    UnknownPartition = 2,
    /// A fetch offset below the log's start (retention dropped it) or past its end.
    OffsetOutOfRange = 3,
    /// A record or batch larger than the broker (or the channel's message) takes.
    RecordTooLarge = 4,
    /// An idempotent producer's batch skips sequence numbers (a gap: something was lost
    /// between the producer and the broker); duplicates are not errors, they are
    /// acknowledged with their original offsets.
    OutOfOrderSequence = 5,
    /// The request is malformed: truncated, an unknown request kind, lengths that do not
    /// add up, a name that is not UTF-8.
    BadRequest = 6,
    /// The request's protocol version is not one this broker speaks.
    UnsupportedVersion = 7,
    /// A fixed table is full (consumer groups, idempotent producers).
    ResourceExhausted = 8,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::UnknownTopic,
        ErrorCode::UnknownPartition,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::RecordTooLarge,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::ResourceExhausted,
    ];

    /// The wire value.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The error with wire value `code`, if any (0 is success, not an error).
    pub fn from_code(code: u16) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    /// A short explanation for people (CLI output, console lines).
    pub fn describe(self) -> &'static str {
        match self {
            ErrorCode::UnknownTopic => "unknown topic (not declared in the broker's config)",
            ErrorCode::UnknownPartition => "unknown partition of the topic",
            ErrorCode::OffsetOutOfRange => "offset out of range (dropped by retention or not yet written)",
            ErrorCode::RecordTooLarge => "record too large",
            ErrorCode::OutOfOrderSequence => "out-of-order sequence number from an idempotent producer",
            ErrorCode::BadRequest => "malformed request",
            ErrorCode::UnsupportedVersion => "unsupported protocol version",
            ErrorCode::ResourceExhausted => "broker table full (groups or producers)",
        }
    }
}

impl core::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_zero_is_not_an_error() {
        for e in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(e.code()), Some(e));
        }
        assert_eq!(ErrorCode::from_code(0), None);
        assert_eq!(ErrorCode::from_code(9), None);
    }
}
