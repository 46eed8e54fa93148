//! LDAP result codes, and LDAP failures of an operation turned into
//! [`ConnectorError`]s that name the system and say what to do. (Failures
//! of connecting, TLS and binding are explained by [`crate::endpoint`].)

use coexist_connector::ConnectorError;
use ldap3::{LdapError, LdapResult};

/// LDAP result codes the connector tells apart (RFC 4511 and extensions).
pub mod rc {
    pub const SUCCESS: u32 = 0;
    pub const OPERATIONS_ERROR: u32 = 1;
    pub const PROTOCOL_ERROR: u32 = 2;
    pub const TIME_LIMIT: u32 = 3;
    pub const SIZE_LIMIT: u32 = 4;
    pub const REFERRAL: u32 = 10;
    pub const ADMIN_LIMIT: u32 = 11;
    pub const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const INVALID_ATTRIBUTE_SYNTAX: u32 = 21;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_DN_SYNTAX: u32 = 34;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const OTHER: u32 = 80;
    /// RFC 4533: the sync cookie is no longer usable, start over.
    pub const SYNC_REFRESH_REQUIRED: u32 = 4096;
}

/// `code (name): text` of a result.
pub fn describe(result: &LdapResult) -> String {
    let text = result.text.trim();
    if text.is_empty() {
        format!("result code {} ({})", result.rc, rc_name(result.rc))
    } else {
        format!("result code {} ({}): {text}", result.rc, rc_name(result.rc))
    }
}

fn rc_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        80 => "other",
        4096 => "e-syncRefreshRequired",
        _ => "unknown",
    }
}

/// `Ok` for a search that ended in success or in a referral (a base that
/// is a referral holds nothing here: the full read reports or follows it);
/// the failure of `what`, in words, otherwise.
pub fn search_done(system: &str, what: &str, result: &LdapResult) -> Result<(), ConnectorError> {
    if result.rc == rc::SUCCESS || result.rc == rc::REFERRAL {
        Ok(())
    } else {
        Err(from_result(system, what, result))
    }
}

/// `Ok` for a change (`what`: `rename {dn}`, `modify {dn}`) the server
/// made; the client's error or the server's refusal, in words, otherwise.
pub fn change_done(
    system: &str,
    what: &str,
    outcome: Result<LdapResult, LdapError>,
) -> Result<(), ConnectorError> {
    let result = outcome.map_err(|e| from_ldap(system, what, e))?;
    if result.rc == rc::SUCCESS {
        Ok(())
    } else {
        Err(from_result(system, what, &result))
    }
}

/// Turns a failed result of operation `what` into an error naming the
/// system, with advice on what to do.
pub fn from_result(system: &str, what: &str, result: &LdapResult) -> ConnectorError {
    let detail = describe(result);
    let msg = |advice: &str| format!("LDAP system `{system}`: {what} failed, {detail}; {advice}");
    match result.rc {
        rc::INVALID_CREDENTIALS => ConnectorError::authentication(msg("check bind_dn and the password")),
        rc::INSUFFICIENT_ACCESS => ConnectorError::permanent(msg(
            "grant the bind DN the rights coexist needs (read on the base DNs, write on stub_base)",
        )),
        rc::NO_SUCH_OBJECT => ConnectorError::permanent(msg(
            "the DN does not exist: create it (for stub_base: the OU stubs go to) or correct the configuration",
        )),
        rc::UNDEFINED_ATTRIBUTE_TYPE | rc::OBJECT_CLASS_VIOLATION | rc::INVALID_ATTRIBUTE_SYNTAX => {
            ConnectorError::permanent(msg(
                "the server's schema does not allow this entry: load the schema of the stub_schema (misc.schema for inetLocalMailRecipient, qmail.schema for qmail, the Exchange attribute targetAddress on AD) or choose another stub_schema",
            ))
        }
        rc::SIZE_LIMIT | rc::ADMIN_LIMIT => ConnectorError::permanent(msg(
            "the server's size limit stopped the read: raise the limit for the bind DN (OpenLDAP olcLimits `size.pr=unlimited size.prtotal=unlimited`, AD MaxPageSize) or lower page_size",
        )),
        rc::TIME_LIMIT => ConnectorError::retryable(msg(
            "the server's time limit stopped the read: raise the limit for the bind DN or narrow base_dns/filters",
        )),
        rc::BUSY | rc::UNAVAILABLE | rc::OTHER | rc::OPERATIONS_ERROR => {
            ConnectorError::retryable(msg("the server is busy or restarting; coexist will retry"))
        }
        _ => ConnectorError::permanent(msg("see the server's log")),
    }
}

/// Turns a library error of operation `what` into a [`ConnectorError`].
pub fn from_ldap(system: &str, what: &str, error: LdapError) -> ConnectorError {
    match error {
        LdapError::LdapResult { result } => from_result(system, what, &result),
        LdapError::FilterParsing => ConnectorError::permanent(format!(
            "LDAP system `{system}`: {what}: a filter does not parse; check user_filter and group_filter"
        )),
        LdapError::Timeout { .. } => timed_out(system, what),
        other => connection_failed(system, what, &other.to_string()),
    }
}

/// Operation `what` timed out.
pub fn timed_out(system: &str, what: &str) -> ConnectorError {
    ConnectorError::retryable(format!(
        "LDAP system `{system}`: {what} timed out; the server is slow or unreachable (raise timeout_seconds if it is merely slow)"
    ))
}

/// The connection failed during operation `what`, as `detail` says.
pub fn connection_failed(system: &str, what: &str, detail: &str) -> ConnectorError {
    ConnectorError::retryable(format!(
        "LDAP system `{system}`: {what}: the connection failed ({detail}); the server may have restarted, coexist will retry"
    ))
}

/// One LDAP request is being sent to the server (a bind, a search, or one
/// change), counted for the run's metrics (`coexist_api_requests_total`,
/// through coexist-connector's task-local counter). A paged search counts
/// each page on the lean reader, once on ldap3's stream. LDAP servers do
/// not throttle the way HTTP APIs do, so none counts as throttled.
pub fn request_sent() {
    coexist_connector::requests::request_sent(false);
}
