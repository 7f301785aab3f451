//! `callrec user add | set-mode | set-role | set-numbers | remove | passwd | list`: who is
//! recorded, and how, and who may sign in to the portal.

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
        UserCommand::Passwd { extension, site } => {
            let mut store = session.open_store()?;
            // Fail on an unknown user before asking for a password.
            store
                .view()
                .user(&site, &extension)
                .with_context(|| format!("cannot set the password of {extension}@{site}"))?;
            let password = read_new_password(&format!("{extension}@{site}"))?;
            store
                .set_password(&site, &extension, &password, &session.actor)
                .with_context(|| format!("cannot set the password of {extension}@{site}"))?;
            out::line(format!(
                "password set for {extension}@{site}; their portal sessions were signed out"
            ))?;
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

/// A new password from the terminal (asked twice) or one line of standard input.
fn read_new_password(account: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new portal password for {account}: "))
            .context("cannot read the password from the terminal")?;
        callrec_store::check_new_password(&first)?;
        let again = rpassword::prompt_password("again: ")
            .context("cannot read the password from the terminal")?;
        anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        password_from_line(&line)
    }
}

/// The password on one line of input: without its line ending, otherwise as typed (spaces
/// count). An empty input is refused with a hint rather than as a short password.
fn password_from_line(line: &str) -> anyhow::Result<String> {
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(line);
    anyhow::ensure!(
        !password.is_empty(),
        "no password given: type it at the terminal, or pipe it on standard input"
    );
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::password_from_line;

    #[test]
    fn a_piped_password_loses_its_line_ending_and_keeps_its_spaces() {
        assert_eq!(password_from_line(" a b c \r\n").unwrap(), " a b c ");
        assert_eq!(password_from_line("no newline").unwrap(), "no newline");
        assert!(password_from_line("\n").is_err());
        assert!(password_from_line("").is_err());
    }
}
