//! The crate's error types.
//!
//! [`Error`] is the one error of every region-level operation (create, open, remove, locks,
//! pipes). The channel errors ([`SendError`] .. [`RecvTimeoutError`]) follow the shape of
//! `std::sync::mpsc` and crossbeam-channel: they hand an unsent message back, print `Full(..)`
//! without needing `T: Debug`, and convert into each other where that loses nothing.
//!
//! errno values are mapped to variants in exactly one place, [`Error::from_io`].

use std::fmt;
use std::io;

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when creating, opening or using a shared object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object of that name exists.
    #[error("no shared object of that name exists")]
    NotFound,
    /// `create` found an object of that name already present.
    #[error("a shared object of that name already exists")]
    AlreadyExists,
    /// The name is not 1..=64 characters of `[A-Za-z0-9_.-]`, or starts with `.`.
    #[error("invalid object name (1..=64 characters of [A-Za-z0-9_.-], not starting with '.')")]
    InvalidName,
    /// The region holds another kind of object, another element layout or another format
    /// version than the caller asked for.
    #[error("incompatible shared object: expected {expected}, found {found}")]
    Incompatible {
        /// What the caller asked for.
        expected: String,
        /// What the region holds.
        found: String,
    },
    /// The region's contents do not check out (bad magic, sizes that disagree with the file,
    /// an index out of bounds, a creator that died before finishing initialisation).
    #[error("corrupted shared object: {reason}")]
    Corrupted {
        /// What failed to check out.
        reason: String,
    },
    /// The object, or the endpoint asked for, is held by another live process
    /// (a second spsc sender, a third pipe end, a full participant table).
    #[error("the object or endpoint is busy (held by another live process)")]
    Busy,
    /// A size, capacity or count that cannot work (capacity 0, a barrier of 0, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A message is larger than the channel can ever hold; nothing was sent.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// The size of the refused message.
        size: usize,
        /// The largest message this channel accepts.
        max: usize,
    },
    /// The peer is gone (dropped its end or its process died) and nothing is left to receive.
    #[error("the peer has disconnected")]
    Disconnected,
    /// A timed operation ran out of time.
    #[error("the operation timed out")]
    Timeout,
    /// An operating-system error not covered by the variants above.
    #[error("i/o error: {0}")]
    Io(#[source] io::Error),
}

impl Error {
    /// Maps an `io::Error` to the matching variant: `ENOENT` is [`Error::NotFound`], `EEXIST`
    /// is [`Error::AlreadyExists`], everything else (`EACCES` included) stays [`Error::Io`].
    pub(crate) fn from_io(e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound,
            Some(libc::EEXIST) => Error::AlreadyExists,
            _ => Error::Io(e),
        }
    }

    pub(crate) fn corrupted(reason: impl Into<String>) -> Error {
        Error::Corrupted {
            reason: reason.into(),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::from_io(e)
    }
}

macro_rules! message_error {
    ($(#[$m:meta])* $name:ident, $($variant:ident => $text:literal),+ $(,)?) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub enum $name<T> {
            $(
                #[doc = concat!("The message could not be sent: ", $text, ". It is handed back.")]
                $variant(T),
            )+
        }

        impl<T> $name<T> {
            /// Unwraps the message that could not be sent.
            pub fn into_inner(self) -> T {
                match self {
                    $($name::$variant(v) => v,)+
                }
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(..) => f.write_str(concat!(stringify!($variant), "(..)")),)+
                }
            }
        }

        impl<T> fmt::Display for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant(..) => f.write_str($text),)+
                }
            }
        }

        impl<T> std::error::Error for $name<T> {}
    };
}

/// The error of a blocking `send`: the channel is disconnected. The message is handed back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// Unwraps the message that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}

impl<T> std::error::Error for SendError<T> {}

message_error!(
    /// The error of `try_send`.
    TrySendError,
    Full => "sending on a full channel",
    Disconnected => "sending on a disconnected channel",
);

message_error!(
    /// The error of `send_timeout`.
    SendTimeoutError,
    Timeout => "timed out waiting on send operation",
    Disconnected => "sending on a disconnected channel",
);

impl<T> TrySendError<T> {
    /// True if the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// True if the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// True if the send timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    /// True if the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}

/// The error of a blocking `recv`: the channel is empty and disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}

impl std::error::Error for RecvError {}

/// The error of `try_recv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to receive right now.
    Empty,
    /// Nothing to receive, and nothing ever will be.
    Disconnected,
}

impl TryRecvError {
    /// True if the channel was empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    /// True if the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "receiving on an empty channel",
            TryRecvError::Disconnected => "receiving on an empty and disconnected channel",
        })
    }
}

impl std::error::Error for TryRecvError {}

/// The error of `recv_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    Timeout,
    /// Nothing to receive, and nothing ever will be.
    Disconnected,
}

impl RecvTimeoutError {
    /// True if the receive timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
    /// True if the channel was disconnected.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvTimeoutError::Timeout => "timed out waiting on receive operation",
            RecvTimeoutError::Disconnected => "channel is empty and disconnected",
        })
    }
}

impl std::error::Error for RecvTimeoutError {}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert!(matches!(
            Error::from_io(io::Error::from_raw_os_error(libc::ENOENT)),
            Error::NotFound
        ));
        assert!(matches!(
            Error::from_io(io::Error::from_raw_os_error(libc::EEXIST)),
            Error::AlreadyExists
        ));
        assert!(matches!(
            Error::from_io(io::Error::from_raw_os_error(libc::EACCES)),
            Error::Io(_)
        ));
    }

    #[test]
    fn channel_errors_hand_back_and_print() {
        let e = TrySendError::Full(7u32);
        assert!(e.is_full() && !e.is_disconnected());
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.to_string(), "sending on a full channel");
        assert_eq!(e.into_inner(), 7);
        let e: SendTimeoutError<u8> = SendError(3u8).into();
        assert_eq!(e, SendTimeoutError::Disconnected(3));
        assert_eq!(TryRecvError::from(RecvError), TryRecvError::Disconnected);
        assert!(RecvTimeoutError::Timeout.is_timeout());
    }
}
