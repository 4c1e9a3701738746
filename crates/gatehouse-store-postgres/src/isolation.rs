//! Tenant isolation as the catalog shows it (C2's self-check): which tables carry an organisation
//! column, whether each is under row-level security that is enabled, forced and has a policy
//! comparing rows with the transaction's scope, and whether the connected role escapes it.
//!
//! The tables come from `pg_catalog`, never from a list kept here, so a table added by a later
//! migration (or by hand) without its policy is named the first time the report runs. Two
//! catalog queries, whatever the amount of data.

use sqlx::PgPool;

use crate::errors::map_err;
use gatehouse_core::StoreError;

/// A column is an organisation column when it is named `org_id` or ends in `_org_id` (the grants'
/// `grantee_org_id`): the names every migration uses for a row's organisation.
const ORG_COLUMN: &str = "(a.attname = 'org_id' OR a.attname LIKE '%\\_org\\_id')";

/// What every policy Gatehouse writes depends on: the transaction's organisation, job, user or
/// a row it declared (`gatehouse_current_org()`, `gatehouse_current_job()`,
/// `gatehouse_named_subject()`, ...), or a grant to the current organisation
/// (`gatehouse_granted(...)`, records' second policy). A permissive policy whose expression calls none of them
/// admits rows whatever the scope (policies are OR'd, so it undoes the scoped one beside it). A
/// policy written to call one and still admit other rows is beyond this check: the
/// row-level-security suite tests the policies the migrations write.
const SCOPED_EXPRESSION: &str = "gatehouse_((current|named)_[a-z_]+|granted)\\(";

/// How the policies name the transaction's organisation (migration 0001).
const SCOPE_FUNCTION: &str = "gatehouse_current_org()";

/// What the catalog says about the connected role and every table with an organisation column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationReport {
    /// The role this store connects as.
    pub role: String,
    /// Why row-level security does not bind the role, when it does not.
    pub bypass: Option<String>,
    /// Every table checked (those with an organisation column), by name; a table outside the
    /// connection's current schema is qualified with its schema.
    pub tables: Vec<String>,
    /// The tables among them whose rows the database does not keep apart, each with why.
    pub not_enforced: Vec<UnenforcedTable>,
}

impl IsolationReport {
    /// How many tables were checked.
    #[must_use]
    pub fn tables_checked(&self) -> usize {
        self.tables.len()
    }

    /// Whether the database itself keeps every organisation's rows apart from this connection.
    #[must_use]
    pub fn enforced(&self) -> bool {
        self.bypass.is_none() && self.not_enforced.is_empty() && !self.tables.is_empty()
    }
}

/// A table with an organisation column that row-level security does not guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnenforcedTable {
    pub table: String,
    /// Each shortfall found, in plain words.
    pub why: Vec<&'static str>,
}

/// The connected role's attributes and what it owns.
pub(crate) struct RoleFacts {
    pub role: String,
    pub superuser: bool,
    pub bypassrls: bool,
    /// Tables in the search path's schemas the role owns, directly or through a role it inherits.
    pub owned_tables: i64,
    /// It is a member of a superuser or BYPASSRLS role, which it can `SET ROLE` to.
    pub escalates: bool,
}

impl RoleFacts {
    /// Why row-level security does not bind the role (the policies bind an owner only while FORCE
    /// is on, and an owner may switch FORCE off).
    pub(crate) fn bypass(&self) -> Option<&'static str> {
        if self.superuser {
            Some("it is a superuser")
        } else if self.bypassrls {
            Some("it has BYPASSRLS")
        } else if self.escalates {
            Some("it is a member of a superuser or BYPASSRLS role, which it can SET ROLE to")
        } else if self.owned_tables > 0 {
            Some("it owns tables (connect as gatehouse_app, not the migration role)")
        } else {
            None
        }
    }
}

pub(crate) async fn role_facts(pool: &PgPool) -> Result<RoleFacts, StoreError> {
    let (role, superuser, bypassrls, owned_tables, escalates): (String, bool, bool, i64, bool) =
        sqlx::query_as(
        "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls, \
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p') \
               AND pg_has_role(current_user, c.relowner, 'MEMBER')), \
           EXISTS (SELECT 1 FROM pg_roles o WHERE o.oid <> r.oid \
                   AND (o.rolsuper OR o.rolbypassrls) AND pg_has_role(current_user, o.oid, 'MEMBER')) \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok(RoleFacts {
        role,
        superuser,
        bypassrls,
        owned_tables,
        escalates,
    })
}

/// One row of the table query.
type TableRow = (String, bool, bool, bool, i64, bool, bool, bool);

pub(crate) async fn report(pool: &PgPool) -> Result<IsolationReport, StoreError> {
    let facts = role_facts(pool).await?;
    let sql = format!(
        "SELECT CASE WHEN n.nspname = current_schema() THEN c.relname::text \
                     ELSE n.nspname || '.' || c.relname END, \
           c.relrowsecurity, c.relforcerowsecurity, \
           pg_has_role(current_user, c.relowner, 'MEMBER'), \
           (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid), \
           EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid \
                   AND position('{SCOPE_FUNCTION}' IN pg_get_expr(p.polqual, p.polrelid)) > 0), \
           n.nspname = current_schema(), \
           EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive \
                   AND (p.polroles = '{{0}}' OR EXISTS (SELECT 1 FROM unnest(p.polroles) r \
                        WHERE pg_has_role(current_user, r, 'MEMBER'))) \
                   AND (pg_get_expr(p.polqual, p.polrelid) !~ '{SCOPED_EXPRESSION}' \
                        OR pg_get_expr(p.polwithcheck, p.polrelid) !~ '{SCOPED_EXPRESSION}')) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p') \
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
                       AND NOT a.attisdropped AND {ORG_COLUMN}) \
         ORDER BY 7 DESC, 1"
    );
    // Built from this file's constants only.
    let rows: Vec<TableRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .map_err(map_err)?;
    let mut tables = Vec::with_capacity(rows.len());
    let mut not_enforced = Vec::new();
    let mut owns_unforced = None;
    for (table, enabled, forced, owned, policies, scoped, _, open) in rows {
        let mut why = Vec::new();
        if !enabled {
            why.push("row-level security is not enabled");
        }
        if !forced {
            why.push("row-level security is not forced, so the table's owner bypasses it");
        }
        if policies == 0 {
            why.push("it has no policy, so no role but its owner reads it");
        } else if !scoped {
            why.push("no policy compares its rows with the transaction's organisation");
        }
        // Permissive policies are OR'd: one that ignores the scope undoes the scoped one.
        if open {
            why.push(
                "a permissive policy that applies to this role depends on neither the transaction's scope nor a declaration",
            );
        }
        if owned && !forced && owns_unforced.is_none() {
            owns_unforced = Some(table.clone());
        }
        if !why.is_empty() {
            not_enforced.push(UnenforcedTable {
                table: table.clone(),
                why,
            });
        }
        tables.push(table);
    }
    // A view runs as its owner unless it is `security_invoker`, and a materialised view holds a
    // copy made by its owner: either, readable by this role, shows every organisation's rows.
    let views: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CASE WHEN n.nspname = current_schema() THEN c.relname::text \
                     ELSE n.nspname || '.' || c.relname END, c.relkind::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('v', 'm') \
           AND has_table_privilege(c.oid, 'SELECT') \
           AND (c.relkind = 'm' OR NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)) \
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
                       AND NOT a.attisdropped AND {ORG_COLUMN}) \
         ORDER BY 1"
    )))
    .fetch_all(pool)
    .await
    .map_err(map_err)?;
    for (view, kind) in views {
        not_enforced.push(UnenforcedTable {
            table: view.clone(),
            why: vec![if kind == "m" {
                "a materialised view this role can read holds a copy of every organisation's rows"
            } else {
                "a view this role can read runs as its owner (not security_invoker), past row-level security"
            }],
        });
        tables.push(view);
    }
    // Owning a table whose security is not forced bypasses it outright; the general reason
    // (owning tables at all) says less, so the specific one wins after superuser and BYPASSRLS.
    let bypass = match (facts.superuser || facts.bypassrls, owns_unforced) {
        (false, Some(t)) => Some(format!(
            "it owns {t}, whose row-level security is not forced"
        )),
        _ => facts.bypass().map(str::to_owned),
    };
    Ok(IsolationReport {
        role: facts.role,
        bypass,
        tables,
        not_enforced,
    })
}
