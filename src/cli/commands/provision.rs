//! `coexist provision ADDRESS --home SYSTEM [attributes…] | --from-csv
//! FILE`: the people to provision, from the command line or a CSV file;
//! the run; what became of each, with where mail to them now goes.

use std::collections::BTreeMap;
use std::path::Path;

use coexist_connector::{Attributes, NewAccount};

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, print_plan};
use crate::cli::Output;
use crate::engine::Engine;
use crate::exit;
use crate::provisioning::{
    csv, normalised, provision, Person, ProvisionError, ProvisionOptions, RouteResult,
};

/// Prints where mail to a person now goes, one `Mail from` line a sender
/// (`provision`, `deprovision` and `move` print the same).
pub fn print_routes(routes: &[RouteResult]) -> Result<(), Failure> {
    for route in routes {
        outln!(
            "  Mail from {:<10} {:<9} {}",
            route.from,
            route.outcome,
            route.path
        )?;
    }
    Ok(())
}

/// The person (or CSV file) the command line names.
pub struct Request<'a> {
    pub address: Option<&'a str>,
    pub home: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub surname: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub aliases: &'a [String],
    /// `NAME=VALUE` pairs.
    pub attributes: &'a [String],
    pub from_csv: Option<&'a Path>,
}

/// The failure a provisioning error is: refused 9, unreadable 4, a bad
/// request 2, the engine's and the store's as theirs, the password file 1.
pub fn failure(error: ProvisionError) -> Failure {
    let message = error.to_string();
    match error {
        ProvisionError::Engine(e) => e.into(),
        ProvisionError::Store(e) => e.into(),
        ProvisionError::Usage(_) => Failure::usage(message),
        ProvisionError::Taken(_) => Failure {
            code: exit::TAKEN,
            message,
        },
        ProvisionError::Unreadable(_) => Failure {
            code: exit::PARTIAL,
            message,
        },
        ProvisionError::Stopped(_) => Failure {
            code: exit::PARTIAL,
            message,
        },
        ProvisionError::PasswordFile { .. } => Failure {
            code: exit::FAILURE,
            message,
        },
    }
}

/// The rows of the CSV file `path` (`--from-csv`); a file that cannot be
/// read or parsed is a usage error naming it.
pub fn csv_rows(path: &Path) -> Result<Vec<csv::Row>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    csv::parse(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// The people to provision: one from the flags, or one per CSV row.
pub fn people(request: &Request<'_>) -> Result<Vec<Person>, Failure> {
    if let Some(path) = request.from_csv {
        let rows = csv_rows(path)?;
        return rows
            .into_iter()
            .map(|row| {
                let mut fields = row.fields;
                let at = |e: String| {
                    Failure::usage(format!("{} line {}: {e}", path.display(), row.line))
                };
                let address = fields
                    .remove("address")
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        at("no address (the header must name an `address` column)".into())
                    })?;
                let home = fields
                    .remove("home")
                    .filter(|h| !h.is_empty())
                    .or(request.home.map(str::to_string))
                    .ok_or_else(|| at("no home (a `home` column or --home)".into()))?;
                let aliases: Vec<String> = fields
                    .remove("aliases")
                    .unwrap_or_default()
                    .split(';')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
                let pairs: Vec<(String, String)> =
                    fields.into_iter().filter(|(_, v)| !v.is_empty()).collect();
                let mut person = person(&address, &home, &aliases, pairs).map_err(at)?;
                person.line = Some(row.line);
                Ok(person)
            })
            .collect();
    }
    let (Some(address), Some(home)) = (request.address, request.home) else {
        return Err(Failure::usage(
            "provision needs ADDRESS and --home SYSTEM, or --from-csv FILE".into(),
        ));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in [
        ("given_name", request.given_name),
        ("surname", request.surname),
        ("display_name", request.display_name),
    ] {
        if let Some(value) = value {
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    for pair in request.attributes {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--attribute {pair}: expected NAME=VALUE")))?;
        pairs.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    person(address, home, request.aliases, pairs)
        .map(|p| vec![p])
        .map_err(Failure::usage)
}

/// One person: addresses normalised, the attributes coexist knows in
/// `attributes`, the others in `extra` for the home's template.
fn person(
    address: &str,
    home: &str,
    aliases: &[String],
    pairs: Vec<(String, String)>,
) -> Result<Person, String> {
    let normal = |a: &str| normalised(a).map_err(|e| e.to_string());
    let primary = normal(address)?;
    let mut aliases = aliases
        .iter()
        .map(|a| normal(a))
        .collect::<Result<Vec<_>, _>>()?;
    aliases.sort();
    aliases.dedup();
    aliases.retain(|a| *a != primary);
    let mut attributes = Attributes::default();
    let mut extra = BTreeMap::new();
    for (name, value) in pairs {
        if Attributes::NAMES.contains(&name.as_str()) {
            attributes.set(&name, Some(value));
        } else {
            extra.insert(name, value);
        }
    }
    Ok(Person {
        line: None,
        home: home.to_string(),
        account: NewAccount {
            primary_address: primary,
            aliases,
            attributes,
            extra,
            password: None,
        },
    })
}

/// Provisions `people` and prints what became of each.
pub async fn run(
    engine: &Engine,
    people: Vec<Person>,
    options: &ProvisionOptions,
    batch: bool,
    output: Output,
) -> Result<i32, Failure> {
    if batch && options.password_file.is_none() && !options.dry_run {
        return Err(Failure::usage(
            "--from-csv needs --password-file FILE: the initial passwords are written there as each account is made, so none is lost if the run stops".into(),
        ));
    }
    let report = provision(engine, people, options).await.map_err(failure)?;
    let code = report.exit_code();
    if output == Output::Json {
        print_json(&report)?;
        return Ok(code);
    }
    for person in &report.people {
        match person.state {
            "created" => outln!(
                "Created {} on {} ({}).",
                person.address,
                person.home,
                person.locator.as_deref().unwrap_or("")
            )?,
            "existed" => outln!(
                "{} exists on {} already (made by an earlier run): carried on with.",
                person.address,
                person.home
            )?,
            "would_create" => outln!(
                "Would record {} placed on {} and create its account there.",
                person.address,
                person.home
            )?,
            "would_continue" => outln!(
                "{} exists on {} already (made by an earlier run): would carry on with it.",
                person.address,
                person.home
            )?,
            _ => outln!(
                "FAILED {} on {}: {} (nothing was made; its placement is removed)",
                person.address,
                person.home,
                person.error.as_deref().unwrap_or("")
            )?,
        }
        if let Some(password) = &person.initial_password {
            outln!("  Initial password (shown once, to change at first login): {password}")?;
        }
        for note in &person.notes {
            outln!("  Note: {note}")?;
        }
        print_routes(&person.routes)?;
    }
    if let Some(file) = &report.password_file {
        outln!("Initial passwords appended to {file} (mode 0600).")?;
    }
    if report.dry_run {
        outln!("The stubs it would write (nothing was changed):")?;
    }
    print_plan(&report.plan)?;
    if let Some(apply) = &report.apply {
        outln!(
            "Applied: {} done, {} failed, {} withheld.",
            apply.done,
            apply.failed,
            apply.withheld
        )?;
        for failure in &apply.failures {
            outln!("  {failure}")?;
        }
    }
    Ok(code)
}
