//! [`Failure`]: why a command stopped, as the message printed on stderr
//! and the exit code (`crate::exit`) each kind of error maps to.

use super::print::OutputError;
use crate::config::ConfigError;
use crate::demo::DemoError;
use crate::engine::EngineError;
use crate::exit;
use crate::store::StoreError;

/// A failure of a command, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// A bad command line (exit 2).
    pub fn usage(message: String) -> Self {
        Failure {
            code: exit::USAGE,
            message,
        }
    }

    /// An unexpected failure: the store, a file (exit 1).
    fn unexpected(message: String) -> Self {
        Failure {
            code: exit::FAILURE,
            message,
        }
    }
}

/// The configuration is wrong: exit 2.
impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e.to_string())
    }
}

/// The store failed: exit 1.
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::unexpected(e.to_string())
    }
}

/// A stale plan says 5, an unknown system 2, a held or lost run lock 7,
/// anything else 1.
impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let code = match e {
            EngineError::StalePlan { .. } => exit::STALE_PLAN,
            EngineError::NotASystem { .. } | EngineError::PlanFormat { .. } => exit::USAGE,
            EngineError::Busy { .. }
            | EngineError::LockLost
            | EngineError::Store(StoreError::Busy) => exit::BUSY,
            _ => exit::FAILURE,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// A file could not be read or written: exit 1.
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::unexpected(e.to_string())
    }
}

/// The output could not be written (stdout closed: a broken pipe, or
/// any other failed write): exit 1, as for any I/O error. What the
/// command did (a sync's run, say) is recorded and its run lock released
/// all the same.
impl From<OutputError> for Failure {
    fn from(e: OutputError) -> Self {
        Failure::unexpected(e.to_string())
    }
}

/// The only JSON coexist decodes from a user is a saved plan: exit 2.
impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::usage(format!("not a coexist plan: {e}"))
    }
}

/// The GAL could not be encoded: exit 1.
impl From<crate::export::ExportError> for Failure {
    fn from(e: crate::export::ExportError) -> Self {
        Failure::unexpected(e.to_string())
    }
}

/// The demo fails as the step that failed does.
impl From<DemoError> for Failure {
    fn from(e: DemoError) -> Self {
        match e {
            DemoError::Io(e) => e.into(),
            DemoError::Config(e) => e.into(),
            DemoError::Store(e) => e.into(),
            DemoError::Engine(e) => e.into(),
            DemoError::Export(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_exit_codes() {
        let stale = EngineError::StalePlan {
            id: "p".into(),
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(Failure::from(stale).code, exit::STALE_PLAN);
        assert_eq!(Failure::from(EngineError::LockLost).code, exit::BUSY);
        assert_eq!(
            Failure::from(EngineError::Store(StoreError::Busy)).code,
            exit::BUSY
        );
        assert_eq!(Failure::from(StoreError::Busy).code, exit::FAILURE);
        assert_eq!(
            Failure::from(std::io::Error::other("disk")).code,
            exit::FAILURE
        );
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let failure = Failure::from(json);
        assert_eq!(failure.code, exit::USAGE);
        assert!(failure.message.starts_with("not a coexist plan: "));
        assert_eq!(
            Failure::from(DemoError::Engine(EngineError::LockLost)).code,
            exit::BUSY
        );
    }
}
