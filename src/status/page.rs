//! The status page `/` (and `/search`): server-rendered HTML with maud
//! (which escapes every value), no JavaScript, readable on a phone.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Html;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::api::{gather, search_all, SearchResult, Which};
use super::view::{OrganisationStatus, SearchHit, WITHHELD_SHOWN};
use super::{StatusError, StatusState};
use crate::reconcile::route::Outcome;
use coexist_model::Route;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:.5rem 1rem;line-height:1.4;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.2rem;border-bottom:1px solid #ccc;margin-top:2rem}h3{font-size:1rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #eee;vertical-align:top}\
.scroll{overflow-x:auto}.ok{color:#176a1a}.bad{color:#a31515;font-weight:bold}.look{color:#8a5a00}\
.box{border:1px solid #ddd;border-radius:4px;padding:.5rem .8rem;margin:.5rem 0}.gate{border-color:#d9a400;background:#fffbea}\
.conflict{border-color:#d33;background:#fff1f1}code{background:#f3f3f3;padding:0 .2rem}\
form{display:flex;flex-wrap:wrap;gap:.4rem;margin:.5rem 0}input[type=search]{flex:1;min-width:12rem;font-size:1rem;padding:.3rem}\
nav a{margin-right:.8rem}ol{padding-left:1.4rem}";

/// `GET /` and `GET /search`: the status of every organisation, and the
/// hits of `?q=` when a search is asked.
pub(super) async fn status_page(
    State(state): State<Arc<StatusState>>,
    Query(which): Query<Which>,
) -> Result<Html<String>, StatusError> {
    let searching = which.q.as_deref().is_some_and(|q| !q.trim().is_empty());
    let results = if searching {
        Some(search_all(&state, &which).await?)
    } else {
        None
    };
    let statuses = gather(&state, &which).await?;
    let ids: Vec<String> = state.organisations().iter().map(|o| o.id.clone()).collect();
    Ok(Html(
        render(&ids, &which, &statuses, results.as_deref()).into_string(),
    ))
}

fn render(
    ids: &[String],
    which: &Which,
    statuses: &[OrganisationStatus],
    results: Option<&[SearchResult]>,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if results.is_none() {
                    meta http-equiv="refresh" content="60";
                }
                title { "coexist status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "coexist status" }
                nav {
                    @for status in statuses {
                        a href={ "#org-" (status.organisation) } { (status.organisation) }
                    }
                }
                (search_form(ids, which))
                @if let Some(results) = results {
                    (search_results(which, results))
                }
                @for status in statuses {
                    (organisation(status))
                }
                @if statuses.is_empty() {
                    p { "No organisation is served." }
                }
            }
        }
    }
}

fn search_form(ids: &[String], which: &Which) -> Markup {
    html! {
        form method="get" action="/" role="search" {
            label for="q" { "Search the GAL" }
            input type="search" id="q" name="q" placeholder="address or name"
                value=(which.q.as_deref().unwrap_or(""));
            @if ids.len() > 1 {
                select name="organisation" aria-label="organisation" {
                    option value="" { "every organisation" }
                    @for id in ids {
                        option value=(id) selected[which.organisation.as_deref() == Some(id.as_str())] { (id) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
    }
}

fn search_results(which: &Which, results: &[SearchResult]) -> Markup {
    let total: usize = results.iter().map(|r| r.hits.len()).sum();
    html! {
        section id="search" {
            h2 { "Search: " (which.q.as_deref().unwrap_or("")) }
            @if total == 0 {
                p.look { "Nobody in the GAL matches." }
            }
            @for result in results {
                @for hit in &result.hits {
                    (search_hit(&result.organisation, hit))
                }
            }
        }
    }
}

fn search_hit(organisation: &str, hit: &SearchHit) -> Markup {
    let entry = &hit.entry;
    let name = entry
        .attributes
        .display_name
        .clone()
        .unwrap_or_else(|| entry.primary_address.clone());
    html! {
        div.box.hit {
            h3 { (name) " — " (entry.primary_address) }
            p {
                "Organisation " strong { (organisation) } ", home "
                strong.home { (entry.home) } " (" (format!("{:?}", entry.kind).to_lowercase()) ")"
                @if entry.systems.len() > 1 { "; held on " (entry.systems.join(", ")) }
                "."
            }
            @if entry.addresses.len() > 1 {
                p { "Addresses: " (entry.addresses.join(", ")) }
            }
            h4 { "Stubs" }
            @if hit.routes_pending {
                p.look { "The mail directory is being read (once after each run): search again in a moment for the stubs and how mail reaches this recipient." }
            } @else if hit.stubs.is_empty() {
                p { "No stub of coexist's stands for this recipient." }
            } @else {
                div.scroll { table.stubs {
                    tr { th { "system" } th { "address" } th { "routes mail" } th { "object" } }
                    @for stub in &hit.stubs {
                        tr { td { (stub.system) } td { (stub.address) } td { (route_words(&stub.route)) } td { (stub.locator) } }
                    }
                } }
            }
            @if !hit.routes_pending {
                h4 { "How mail reaches " (entry.primary_address) }
            }
            @for route in &hit.routes {
                div.route {
                    strong { "From " (route.from) ": " }
                    (outcome_words(&route.trace.outcome))
                    ol {
                        @for hop in &route.trace.hops {
                            li { (hop.system) " " code { (hop.address) } " " (hop.action) }
                        }
                    }
                }
            }
        }
    }
}

fn route_words(route: &Route) -> String {
    match route {
        Route::Address(to) => format!("forwards to {to}"),
        Route::Host(host) => format!("relays to {host}"),
        Route::DomainRouting => "by the system's domain routing".to_string(),
    }
}

/// The words of `coexist route`'s last line.
fn outcome_words(outcome: &Outcome) -> Markup {
    match outcome {
        Outcome::Delivered { system, hops } => html! {
            span.ok { "Delivered to a mailbox on " (system) " after " (hops) " hop(s)." }
        },
        Outcome::External { domain, hops } => html! {
            span.look { "Leaves the organisation for " (domain) " after " (hops) " hop(s)." }
        },
        Outcome::Bounced { system, reason } => html! {
            span.bad { "Bounced by " (system) ": " (reason) "." }
        },
        Outcome::Looping { cycle } => html! {
            span.bad { "Loops: " (cycle.join(" → ")) "." }
        },
    }
}

fn organisation(status: &OrganisationStatus) -> Markup {
    html! {
        section.organisation id={ "org-" (status.organisation) } {
            h2 { "Organisation " (status.organisation) }
            @if status.readiness.ready {
                p.ok.readiness { "Ready: nothing waits for a person." }
            } @else {
                div.box.readiness {
                    p.bad { "Needs a person:" }
                    ul { @for reason in &status.readiness.reasons { li { (reason) } } }
                }
            }
            h3 { "Systems" }
            div.scroll { table.systems {
                tr { th { "system" } th { "kind" } th { "health" } th { "recipients" } th { "stubs" } th { "last read" } th { "next read" } }
                @for system in &status.systems {
                    tr {
                        td { (system.system) }
                        td { (system.kind) }
                        td {
                            span class=(if system.health == "ok" { "ok" } else { "bad" }) { (system.health) }
                            @if let Some(detail) = &system.detail { br; small { (detail) } }
                        }
                        td { (system.read.recipients) }
                        td { (system.read.stubs) }
                        td { (system.read.read_at.as_deref().unwrap_or("never")) }
                        td { (if system.read.incremental { "delta (cursor kept)" } else { "full" }) }
                    }
                }
            } }
            @if let Some(plan) = &status.plan {
                p { "Last plan " code { (plan.id) } " of " (plan.created_at) ": "
                    (plan.operations) " operations, GAL of " (plan.gal) " recipients." }
            }
            h3 { "Safety gates" }
            @if status.gates.is_empty() {
                p.ok { "No safety gate holds anything back." }
            }
            @for gate in &status.gates {
                div.box.gate {
                    p { strong { (gate.gate) } " on " strong { (gate.system) } ": " (gate.message) }
                    p { "To release: " (gate.release) }
                }
            }
            @if !status.withheld.is_empty() {
                h4 { "Withheld operations" }
                ul {
                    @for count in &status.withheld {
                        li { (count.count) " " (count.action) " on " (count.system) }
                    }
                }
                div.scroll { table.withheld {
                    tr { th { "system" } th { "action" } th { "address" } th { "reason" } }
                    @for op in &status.withheld_operations {
                        tr { td { (op.system) } td { (op.action) } td { (op.address) } td { (op.reason) } }
                    }
                } }
                @let total: u64 = status.withheld.iter().map(|c| c.count).sum();
                @if total > WITHHELD_SHOWN as u64 {
                    p { "… and " (total - WITHHELD_SHOWN as u64) " more (GET /api/status, or coexist plan --output json)." }
                }
            }
            h3 { "Conflicts" }
            @if status.conflicts.is_empty() {
                p.ok { "No conflicts." }
            }
            @for conflict in &status.conflicts {
                div.box.conflict {
                    p { strong { (super::metrics::conflict_kind_name(conflict.kind)) } ": " (conflict.message) }
                }
            }
            h3 { "Last runs" }
            @if status.runs.is_empty() {
                p { "No run yet." }
            } @else {
                div.scroll { table.runs {
                    tr { th { "run" } th { "command" } th { "started" } th { "finished" } th { "outcome" }
                         th { "create / update / delete" } th { "done / failed / withheld" } th { "conflicts" } }
                    @for run in &status.runs {
                        tr {
                            td { (run.id) }
                            td { (run.command) }
                            td { (run.started_at) }
                            td { (run.finished_at.as_deref().unwrap_or("")) }
                            td { span class=(if super::view::needs_a_person(run.status).is_some() { "bad" } else { "ok" }) { (run.status) } }
                            td { (count(run.create)) " / " (count(run.update)) " / " (count(run.delete)) }
                            td { (count(run.done)) " / " (count(run.failed)) " / " (count(run.withheld)) }
                            td { (count(run.conflicts)) }
                        }
                        @if let Some(error) = &run.error {
                            tr { td colspan="8" { span.bad { "error: " } (error) } }
                        }
                    }
                } }
            }
        }
    }
}

fn count(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "–".to_string())
}
