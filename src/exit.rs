//! The process exit codes, documented in the README.

/// Everything asked for was done.
pub const OK: i32 = 0;
/// An unexpected failure (the store, an I/O error).
pub const FAILURE: i32 = 1;
/// Bad command line or configuration.
pub const USAGE: i32 = 2;
/// A safety gate withheld changes.
pub const GATE: i32 = 3;
/// Partly done: a system could not be read, or some operations failed.
pub const PARTIAL: i32 = 4;
/// The saved plan is stale: the staged state changed since it was made.
pub const STALE_PLAN: i32 = 5;
/// `plan --detailed-exitcode`: the plan has changes to make.
pub const CHANGES: i32 = 6;
/// Another coexist run holds the store's run lock; nothing was done.
pub const BUSY: i32 = 7;
/// Mail loops: a routing entry (coexist's or one it did not make) or the
/// catch-all relays send some address round in circles. The output names
/// the entry and what to do; nothing was written for the addresses
/// concerned.
pub const ROUTING_LOOP: i32 = 8;
/// `provision`: refused, an address asked for is already a mailbox, an
/// entry, a stub, a placement or a GAL entry somewhere (the output names
/// each); `deprovision`: refused, coexist did not create the account.
/// Nothing was changed.
pub const TAKEN: i32 = 9;
