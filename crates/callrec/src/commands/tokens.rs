//! `callrec token create | list | revoke`: API tokens. The store keeps only a hash; the secret
//! exists once, on the stdout of `create`.

use anyhow::Context as _;
use callrec_model::TokenId;
use callrec_store::{Access, TokenInfo};

use crate::cli::TokenCommand;
use crate::commands::{Session, out, table};
use crate::exit::Outcome;

/// Runs one `token` subcommand.
pub fn run(session: &Session, command: TokenCommand) -> anyhow::Result<Outcome> {
    let access = Access::system(session.actor.clone());
    match command {
        TokenCommand::Create {
            extension,
            site,
            label,
            expires_days,
        } => {
            let mut store = session.open_store()?;
            let context = || format!("cannot create a token for {extension}@{site}");
            let user = store.view().user(&site, &extension).with_context(context)?;
            let expires_at =
                expires_days.map(|d| store.now() + chrono::Duration::days(i64::from(d)));
            let token = store
                .create_token_until(user.id, &label, &access, expires_at)
                .with_context(context)?;
            // The secret alone on stdout, so `TOKEN=$(callrec token create 1001)` works; the
            // explanation on stderr.
            out::line(&token.secret)?;
            eprintln!(
                "created token {} for {}@{} (role {}); this is the only time it is shown",
                token.id, user.extension, user.site, user.role
            );
        }
        TokenCommand::List { json } => {
            let store = session.open_store()?;
            let tokens = store.view().tokens(None).context("cannot list tokens")?;
            if json {
                out::json(&tokens)?;
            } else if tokens.is_empty() {
                eprintln!("no tokens yet (create one with `callrec token create <extension>`)");
            } else {
                out::print(&token_table(&tokens))?;
            }
        }
        TokenCommand::Revoke { id } => {
            let mut store = session.open_store()?;
            let id = TokenId(id);
            let already = store
                .view()
                .tokens(None)
                .context("cannot list tokens")?
                .into_iter()
                .find(|t| t.id == id)
                .is_some_and(|t| t.revoked_at.is_some());
            store
                .revoke_token(id, &access)
                .with_context(|| format!("cannot revoke token {id}"))?;
            if already {
                out::line(format!("token {id} was already revoked"))?;
            } else {
                out::line(format!("revoked token {id}"))?;
            }
        }
    }
    Ok(Outcome::Success)
}

fn token_table(tokens: &[TokenInfo]) -> String {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.site.clone(),
                t.extension.clone(),
                table::time(&t.created_at),
                t.revoked_at.as_ref().map_or("-".to_owned(), table::time),
                t.expires_at
                    .as_ref()
                    .map_or("never".to_owned(), table::time),
                t.last_used_at
                    .as_ref()
                    .map_or("never".to_owned(), table::time),
                t.label.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "SITE",
            "EXTENSION",
            "CREATED",
            "REVOKED",
            "EXPIRES",
            "LAST USED",
            "LABEL",
        ],
        &rows,
    )
}
