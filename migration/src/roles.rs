//! One PostgreSQL role per service, and what each may do: declared here, in
//! one place.
//!
//! `aplus_owner` owns the schema and is the only role migrations run as.
//! `aplus_bot`, `aplus_worker` and `aplus_reconciler` get exactly the rights
//! their statements need, listed per table, view, sequence and function in
//! [`GRANTS`]. A table that is not listed fails the test
//! `every_object_of_the_schema_has_a_grant_decision`, so a later migration
//! cannot add one without deciding who may touch it.
//!
//! Three steps, all idempotent:
//! - [`ensure_roles`] creates or corrects the roles. Roles belong to the
//!   whole server, so it needs a role with `CREATEROLE` (the first install,
//!   `migration roles`); it tolerates another caller creating the same role
//!   at the same moment (tests run in parallel against one server).
//! - [`hand_over`] makes `aplus_owner` the owner of the database and of every
//!   object, and revokes from `PUBLIC` what nobody should have (creating
//!   objects in `public`, temporary tables). Also `migration roles`.
//! - [`grant`] applies [`GRANTS`]: first revokes everything from the service
//!   roles, then grants what is declared, so a right removed here is removed
//!   from the database too. [`crate::migrate`] runs it after every migration,
//!   as the owner.
//!
//! Beyond its tables, the reconciler is a member of `pg_read_all_stats`
//! (the query text of other roles' sessions in `pg_stat_activity`: it counts
//! LISTEN sessions) and of `pg_signal_backend`: its stale-listener recovery
//! ends the worker's LISTEN sessions with `pg_terminate_backend`, which
//! otherwise only the session's own role may do. `pg_signal_backend` lets it
//! end any non-superuser session; it only ever ends a LISTEN session whose
//! heartbeat is stale, and being the worker's member instead would give it
//! every right of the worker.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

/// A role of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Owns the schema; migrations only.
    Owner,
    /// The Discord bot.
    Bot,
    /// The outbox consumer.
    Worker,
    /// Repairs, diagnosis, dashboard.
    Reconciler,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Bot, Role::Worker, Role::Reconciler];
    /// The roles services run as.
    pub const SERVICES: [Role; 3] = [Role::Bot, Role::Worker, Role::Reconciler];

    /// The role's name in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "aplus_owner",
            Role::Bot => "aplus_bot",
            Role::Worker => "aplus_worker",
            Role::Reconciler => "aplus_reconciler",
        }
    }

    /// `CONNECTION LIMIT`: no service can take every connection of the
    /// server (100 by default, 3 of them reserved for superusers). The bot
    /// needs its pool (8 by default) and a writer; a worker its pool
    /// (concurrency + 2) and a LISTEN session, and two workers may run; the
    /// reconciler its pool and `diagnose`/`recover` run beside it.
    pub fn connection_limit(self) -> i32 {
        match self {
            Role::Owner => 4,
            Role::Bot => 16,
            Role::Worker => 32,
            Role::Reconciler => 16,
        }
    }

    /// Predefined roles this role is a member of.
    pub fn memberships(self) -> &'static [&'static str] {
        match self {
            Role::Reconciler => &["pg_read_all_stats", "pg_signal_backend"],
            _ => &[],
        }
    }
}

/// What an entry of [`GRANTS`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A table.
    Table,
    /// A view (read as a table: `SELECT` only).
    View,
    /// A sequence (`USAGE` lets `nextval` fill a serial column).
    Sequence,
    /// A function, by its signature (`name()`).
    Function,
}

impl Kind {
    fn keyword(self) -> &'static str {
        match self {
            Kind::Table | Kind::View => "TABLE",
            Kind::Sequence => "SEQUENCE",
            Kind::Function => "FUNCTION",
        }
    }
}

/// Who may do what to one object. Each right is PostgreSQL's privilege
/// list (`"SELECT, INSERT"`, column lists allowed); empty means nothing.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// Table, view, sequence or function signature.
    pub object: &'static str,
    /// What it is.
    pub kind: Kind,
    /// `aplus_bot`'s rights.
    pub bot: &'static str,
    /// `aplus_worker`'s rights.
    pub worker: &'static str,
    /// `aplus_reconciler`'s rights.
    pub reconciler: &'static str,
}

impl Grant {
    /// The rights of `role` (the owner's are implied by owning).
    pub fn of(&self, role: Role) -> &'static str {
        match role {
            Role::Owner => "",
            Role::Bot => self.bot,
            Role::Worker => self.worker,
            Role::Reconciler => self.reconciler,
        }
    }
}

const fn g(
    kind: Kind,
    object: &'static str,
    bot: &'static str,
    worker: &'static str,
    reconciler: &'static str,
) -> Grant {
    Grant {
        object,
        kind,
        bot,
        worker,
        reconciler,
    }
}

use Kind::{Function, Sequence, Table, View};

const S: &str = "SELECT";

/// Every object of the schema and every service's rights on it.
///
/// `UPDATE` and `INSERT ... ON CONFLICT DO UPDATE` also need `SELECT` (their
/// `WHERE`, `RETURNING` and conflict columns). The worker's
/// `UPDATE (worker_lock)` on `events` is what lets it claim events with
/// `FOR UPDATE` (see migration `m20261205_000008`).
pub const GRANTS: &[Grant] = &[
    g(Table, "seaql_migrations", "", "", ""),
    // The bot writes messages with their events, and tombstones.
    g(Table, "messages", "SELECT, INSERT, UPDATE", S, S),
    g(Table, "message_tombstones", "SELECT, INSERT", "", S),
    g(
        Table,
        "events",
        "SELECT, INSERT",
        "SELECT, UPDATE (worker_lock)",
        "SELECT, INSERT, DELETE",
    ),
    // The worker's consumers; the reconciler replays and prunes.
    g(
        Table,
        "inbox",
        "",
        "SELECT, INSERT, UPDATE",
        "SELECT, UPDATE, DELETE",
    ),
    // Both the worker and the reconciler move the watermark.
    g(
        Table,
        "outbox_watermark",
        "",
        "SELECT, UPDATE",
        "SELECT, UPDATE",
    ),
    g(Table, "message_parses", "", "SELECT, INSERT, UPDATE", S),
    g(Table, "setups", "", "SELECT, INSERT, UPDATE, DELETE", S),
    g(Sequence, "setups_id_seq", "", "USAGE", ""),
    g(Table, "ticker_bias", "", "SELECT, INSERT, DELETE", S),
    // The reconciler's own record of its passes, pruned by itself.
    g(Table, "reconciler_runs", "", "", "SELECT, INSERT, DELETE"),
    g(Sequence, "reconciler_runs_id_seq", "", "", "USAGE"),
    // Written by the worker's listener; stale rows deleted by the reconciler.
    g(
        Table,
        "listener_heartbeats",
        "",
        "SELECT, INSERT, UPDATE",
        "SELECT, DELETE",
    ),
    // The bot's history sweeps, read by the reconciler's diagnosis.
    g(Table, "upstream_sweeps", "INSERT", "", S),
    g(Sequence, "upstream_sweeps_id_seq", "USAGE", "", ""),
    // The bot's gap ledger: what an outage dropped, until backfill takes it.
    g(Table, "gap_losses", "SELECT, INSERT, UPDATE, DELETE", "", S),
    g(Table, "gap_refetch", "SELECT, INSERT, DELETE", "", S),
    g(View, "event_message_ratio", "", "", S),
    g(View, "orphaned_events", "", "", S),
    g(View, "pipeline_health", "", "", S),
    g(View, "processing_rate", "", "", S),
    g(View, "upstream_coverage", "", "", S),
    g(
        Function,
        "outbox_processed_through()",
        "",
        "EXECUTE",
        "EXECUTE",
    ),
    g(Function, "aplus_orphan_grace()", "", "", "EXECUTE"),
    // A view calls its functions with the reader's rights, so the readers
    // of orphaned_events and pipeline_health need it, as does the orphan scan.
    g(Function, "outbox_pending_events()", "", "", "EXECUTE"),
];

/// How [`ensure_roles`] sets up the roles.
#[derive(Debug, Clone, Default)]
pub struct RoleOptions {
    /// Leave `CONNECTION LIMIT` unlimited (a shared test server, where many
    /// tests' services log in as the same roles at once).
    pub unlimited_connections: bool,
    /// Passwords to set (scram-hashed by the server). Roles not listed keep
    /// theirs (none when new: peer, trust or certificate authentication).
    pub passwords: Vec<(Role, String)>,
}

/// Quotes `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Creates the roles, or corrects their attributes, connection limits and
/// memberships. Safe against a concurrent caller: a role created meanwhile
/// is a duplicate that is ignored, and a role is altered only when it differs.
pub async fn ensure_roles(db: &DatabaseConnection, options: &RoleOptions) -> Result<(), DbErr> {
    for role in Role::ALL {
        let name = role.name();
        let limit = if options.unlimited_connections {
            -1
        } else {
            role.connection_limit()
        };
        let attributes = format!(
            "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
             CONNECTION LIMIT {limit}"
        );
        let mut sql = format!(
            r#"DO $roles$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
    BEGIN
      CREATE ROLE {name} {attributes};
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}' AND rolcanlogin
                 AND rolinherit AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole
                 AND NOT rolreplication AND NOT rolbypassrls AND rolconnlimit = {limit}) THEN
    ALTER ROLE {name} {attributes};
  END IF;
"#
        );
        for member_of in role.memberships() {
            sql.push_str(&format!(
                r#"  IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                 JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                 WHERE r.rolname = '{member_of}' AND u.rolname = '{name}') THEN
    GRANT {member_of} TO {name};
  END IF;
"#
            ));
        }
        sql.push_str("END $roles$;\n");
        db.execute_unprepared(&sql).await?;
    }
    for (role, password) in &options.passwords {
        db.execute_unprepared(&format!(
            "ALTER ROLE {} PASSWORD {}",
            role.name(),
            literal(password)
        ))
        .await?;
    }
    Ok(())
}

/// True when every role exists on the server.
pub async fn roles_exist<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let names: Vec<String> = Role::ALL.iter().map(|r| literal(r.name())).collect();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT count(*) AS n FROM pg_roles WHERE rolname IN ({})",
                names.join(", ")
            ),
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("counting roles returned no row".into()))?;
    Ok(row.try_get_by::<i64, _>("n")? == Role::ALL.len() as i64)
}

/// Makes `aplus_owner` the owner of the current database, its `public`
/// schema and every object in [`GRANTS`] that exists, and takes from
/// `PUBLIC` the rights to create objects and temporary tables. Needs a
/// superuser (or the current owner, member of `aplus_owner`).
pub async fn hand_over<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let owner = Role::Owner.name();
    let mut sql = format!(
        r#"DO $hand$ BEGIN
  EXECUTE format('ALTER DATABASE %I OWNER TO {owner}', current_database());
  EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $hand$;
ALTER SCHEMA public OWNER TO {owner};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
"#
    );
    for grant in GRANTS {
        let (kind, object) = (grant.kind, grant.object);
        let keyword = match kind {
            Kind::View => "VIEW",
            other => other.keyword(),
        };
        let exists = match kind {
            Kind::Function => format!(
                "to_regprocedure('{object}') IS NOT NULL \
                 AND (SELECT proowner::regrole::text FROM pg_proc \
                      WHERE oid = to_regprocedure('{object}')) <> '{owner}'"
            ),
            _ => format!(
                "to_regclass('{object}') IS NOT NULL \
                 AND (SELECT relowner::regrole::text FROM pg_class \
                      WHERE oid = to_regclass('{object}')) <> '{owner}'"
            ),
        };
        // A sequence owned by a column follows its table's owner.
        if kind == Kind::Sequence {
            continue;
        }
        sql.push_str(&format!(
            "DO $obj$ BEGIN IF {exists} THEN ALTER {keyword} {object} OWNER TO {owner}; END IF; END $obj$;\n"
        ));
    }
    db.execute_unprepared(&sql).await.map(|_| ())
}

/// Applies [`GRANTS`] to every object that exists (a step of an older
/// schema may lack the newest): revokes all from the service roles and
/// `PUBLIC`, then grants what is declared. Run by [`crate::migrate`] after
/// every migration, as the owner.
pub async fn grant<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let services: Vec<&str> = Role::SERVICES.iter().map(|r| r.name()).collect();
    let mut sql = format!("GRANT USAGE ON SCHEMA public TO {};\n", services.join(", "));
    for grant in GRANTS {
        let keyword = grant.kind.keyword();
        let object = grant.object;
        let mut body = format!(
            "REVOKE ALL ON {keyword} {object} FROM PUBLIC, {};",
            services.join(", ")
        );
        for role in Role::SERVICES {
            let rights = grant.of(role);
            if !rights.is_empty() {
                body.push_str(&format!(
                    " GRANT {rights} ON {keyword} {object} TO {};",
                    role.name()
                ));
            }
        }
        let exists = match grant.kind {
            Kind::Function => format!("to_regprocedure('{object}') IS NOT NULL"),
            _ => format!("to_regclass('{object}') IS NOT NULL"),
        };
        sql.push_str(&format!(
            "DO $grant$ BEGIN IF {exists} THEN {body} END IF; END $grant$;\n"
        ));
    }
    db.execute_unprepared(&sql).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limits_leave_room_on_a_default_server() {
        // max_connections 100 less 3 reserved for superusers.
        let total: i32 = Role::ALL.iter().map(|r| r.connection_limit()).sum();
        assert!(total <= 97, "{total}");
    }

    #[test]
    fn no_service_may_change_the_migration_record() {
        let record = GRANTS
            .iter()
            .find(|g| g.object == "seaql_migrations")
            .expect("listed");
        for role in Role::SERVICES {
            assert_eq!(record.of(role), "", "{role:?}");
        }
    }

    #[test]
    fn views_are_only_read() {
        for grant in GRANTS.iter().filter(|g| g.kind == Kind::View) {
            for role in Role::SERVICES {
                assert!(matches!(grant.of(role), "" | "SELECT"), "{grant:?}");
            }
        }
    }
}
