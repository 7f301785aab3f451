//! `callrec user add | set-mode | set-role | set-numbers | remove | list`: who is recorded, and how.

use anyhow::Context as _;
use callrec_model::Role;
use callrec_store::{NewUser, User, UserUpdate};

use crate::cli::UserCommand;
use crate::commands::{Session, out, table};
use crate::exit::Outcome;

/// Runs one `user` subcommand.
pub fn run(session: &Session, command: UserCommand) -> anyhow::Result<Outcome> {
    match command {
        UserCommand::Add {
            extension,
            mode,
            numbers,
            site,
            name,
            admin,
        } => {
            let mut store = session.open_store()?;
            session.apply_site_config(&mut store)?;
            let new = NewUser {
                site,
                extension,
                display_name: name,
                mode,
                role: if admin { Role::Admin } else { Role::User },
                numbers,
            };
            let user = store
                .add_user(&new, &session.actor)
                .with_context(|| format!("cannot add user {}", new.extension))?;
            out::line(format!(
                "added user {}@{}: mode {}, role {}{}",
                user.extension,
                user.site,
                user.mode,
                user.role,
                numbers_suffix(&user)
            ))?;
        }
        UserCommand::SetMode {
            extension,
            mode,
            site,
        } => {
            let mut store = session.open_store()?;
            let before = store
                .view()
                .user(&site, &extension)
                .with_context(|| format!("cannot change the mode of {extension}"))?;
            let after = store
                .set_mode(&site, &extension, mode, &session.actor)
                .with_context(|| format!("cannot change the mode of {extension}"))?;
            if before.mode == after.mode {
                out::line(format!(
                    "{}@{}: mode is already {}",
                    after.extension, after.site, after.mode
                ))?;
            } else {
                out::line(format!(
                    "{}@{}: mode {} -> {}",
                    after.extension, after.site, before.mode, after.mode
                ))?;
            }
        }
        UserCommand::SetRole {
            extension,
            role,
            site,
        } => {
            let update = UserUpdate {
                role: Some(role),
                ..UserUpdate::default()
            };
            let (before, after) = update_user(session, &site, &extension, &update)
                .with_context(|| format!("cannot change the role of {extension}"))?;
            out::line(format!(
                "{}@{}: role {} -> {}",
                after.extension, after.site, before.role, after.role
            ))?;
        }
        UserCommand::SetNumbers {
            extension,
            numbers,
            site,
        } => {
            let update = UserUpdate {
                numbers: Some(numbers),
                ..UserUpdate::default()
            };
            let (_, after) = update_user(session, &site, &extension, &update)
                .with_context(|| format!("cannot set the numbers of {extension}"))?;
            out::line(format!(
                "{}@{}: {}",
                after.extension,
                after.site,
                match numbers_suffix(&after) {
                    s if s.is_empty() => "no numbers".to_owned(),
                    s => s.trim_start_matches(", ").to_owned(),
                }
            ))?;
        }
        UserCommand::Remove { extension, site } => {
            let mut store = session.open_store()?;
            store
                .remove_user(&site, &extension, &session.actor)
                .with_context(|| format!("cannot remove user {extension}@{site}"))?;
            out::line(format!("removed user {extension}@{site}"))?;
        }
        UserCommand::List { site, json } => {
            let store = session.open_store()?;
            let users = store
                .view()
                .users(site.as_deref())
                .context("cannot list users")?;
            if json {
                out::json(&users)?;
            } else if users.is_empty() {
                eprintln!("no users yet (add one with `callrec user add <extension>`)");
            } else {
                out::print(&user_table(&users))?;
            }
        }
    }
    Ok(Outcome::Success)
}

/// Applies `update` to a user; the user before and after.
fn update_user(
    session: &Session,
    site: &str,
    extension: &str,
    update: &UserUpdate,
) -> anyhow::Result<(User, User)> {
    let mut store = session.open_store()?;
    let before = store.view().user(site, extension)?;
    let after = store.update_user(site, extension, update, &session.actor)?;
    Ok((before, after))
}

fn numbers_suffix(user: &User) -> String {
    if user.numbers.is_empty() {
        String::new()
    } else {
        let numbers: Vec<&str> = user.numbers.iter().map(|n| n.normalised.as_str()).collect();
        format!(", numbers {}", numbers.join(" "))
    }
}

fn user_table(users: &[User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.site.clone(),
                u.extension.clone(),
                u.mode.to_string(),
                u.role.to_string(),
                u.display_name.clone().unwrap_or_default(),
                u.numbers
                    .iter()
                    .map(|n| n.normalised.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    table::render(
        &["SITE", "EXTENSION", "MODE", "ROLE", "NAME", "NUMBERS"],
        &rows,
    )
}
