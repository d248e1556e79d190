"""Database-enforced invariant: every response in a comparison answers the comparison's prompt, and the
prompt belongs to the comparison's project. A CHECK cannot look at other rows, so triggers do it; they
raise a constraint violation (an IntegrityError in Django) on SQLite and PostgreSQL alike.

SQLite rebuilds a table for most ALTERs, and a trigger that names the table being rebuilt breaks the rename.
A migration that alters feedback_comparison, feedback_rankingitem, feedback_response or feedback_prompt
therefore starts with `migrations.RunPython(drop, install)` and ends with `migrations.RunPython(install, drop)`.
"""

MESSAGE = "comparison responses must answer the comparison prompt in the same project"

SQLITE = (
    [
        f"""
    CREATE TRIGGER feedback_comparison_same_prompt_{op.lower()} BEFORE {op} ON feedback_comparison
    WHEN (NEW.response_a_id IS NOT NULL
          AND (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_a_id) IS NOT NEW.prompt_id)
      OR (NEW.response_b_id IS NOT NULL
          AND (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_b_id) IS NOT NEW.prompt_id)
      OR (SELECT project_id FROM feedback_prompt WHERE id = NEW.prompt_id) IS NOT NEW.project_id
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
    """
        for op in ("INSERT", "UPDATE")
    ]
    + [
        f"""
    CREATE TRIGGER feedback_rankingitem_same_prompt_{op.lower()} BEFORE {op} ON feedback_rankingitem
    WHEN (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_id)
      IS NOT (SELECT prompt_id FROM feedback_comparison WHERE id = NEW.comparison_id)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;
    """
        for op in ("INSERT", "UPDATE")
    ]
    + [
        """
    CREATE TRIGGER feedback_response_prompt_fixed BEFORE UPDATE OF prompt_id ON feedback_response
    WHEN NEW.prompt_id IS NOT OLD.prompt_id
    BEGIN SELECT RAISE(ABORT, 'a response cannot move to another prompt'); END;
    """,
        """
    CREATE TRIGGER feedback_prompt_project_fixed BEFORE UPDATE OF project_id ON feedback_prompt
    WHEN NEW.project_id IS NOT OLD.project_id
    BEGIN SELECT RAISE(ABORT, 'a prompt cannot move to another project'); END;
    """,
    ]
)
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS feedback_comparison_same_prompt_insert",
    "DROP TRIGGER IF EXISTS feedback_comparison_same_prompt_update",
    "DROP TRIGGER IF EXISTS feedback_rankingitem_same_prompt_insert",
    "DROP TRIGGER IF EXISTS feedback_rankingitem_same_prompt_update",
    "DROP TRIGGER IF EXISTS feedback_response_prompt_fixed",
    "DROP TRIGGER IF EXISTS feedback_prompt_project_fixed",
]

POSTGRES = [
    f"""
    CREATE FUNCTION feedback_comparison_same_prompt() RETURNS trigger AS $$
    BEGIN
      IF (NEW.response_a_id IS NOT NULL AND
          (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_a_id) IS DISTINCT FROM NEW.prompt_id)
         OR (NEW.response_b_id IS NOT NULL AND
          (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_b_id) IS DISTINCT FROM NEW.prompt_id)
         OR (SELECT project_id FROM feedback_prompt WHERE id = NEW.prompt_id) IS DISTINCT FROM NEW.project_id THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql;
    """,
    """CREATE TRIGGER feedback_comparison_same_prompt BEFORE INSERT OR UPDATE ON feedback_comparison
       FOR EACH ROW EXECUTE FUNCTION feedback_comparison_same_prompt();""",
    f"""
    CREATE FUNCTION feedback_rankingitem_same_prompt() RETURNS trigger AS $$
    BEGIN
      IF (SELECT prompt_id FROM feedback_response WHERE id = NEW.response_id)
         IS DISTINCT FROM (SELECT prompt_id FROM feedback_comparison WHERE id = NEW.comparison_id) THEN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql;
    """,
    """CREATE TRIGGER feedback_rankingitem_same_prompt BEFORE INSERT OR UPDATE ON feedback_rankingitem
       FOR EACH ROW EXECUTE FUNCTION feedback_rankingitem_same_prompt();""",
    """
    CREATE FUNCTION feedback_parent_fixed() RETURNS trigger AS $$
    BEGIN
      RAISE EXCEPTION 'a % cannot move to another parent', TG_TABLE_NAME USING ERRCODE = 'check_violation';
    END $$ LANGUAGE plpgsql;
    """,
    """CREATE TRIGGER feedback_response_prompt_fixed BEFORE UPDATE OF prompt_id ON feedback_response
       FOR EACH ROW WHEN (NEW.prompt_id IS DISTINCT FROM OLD.prompt_id) EXECUTE FUNCTION feedback_parent_fixed();""",
    """CREATE TRIGGER feedback_prompt_project_fixed BEFORE UPDATE OF project_id ON feedback_prompt
       FOR EACH ROW WHEN (NEW.project_id IS DISTINCT FROM OLD.project_id) EXECUTE FUNCTION feedback_parent_fixed();""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS feedback_comparison_same_prompt ON feedback_comparison",
    "DROP TRIGGER IF EXISTS feedback_rankingitem_same_prompt ON feedback_rankingitem",
    "DROP TRIGGER IF EXISTS feedback_response_prompt_fixed ON feedback_response",
    "DROP TRIGGER IF EXISTS feedback_prompt_project_fixed ON feedback_prompt",
    "DROP FUNCTION IF EXISTS feedback_comparison_same_prompt()",
    "DROP FUNCTION IF EXISTS feedback_rankingitem_same_prompt()",
    "DROP FUNCTION IF EXISTS feedback_parent_fixed()",
]


def _execute(schema_editor, statements: dict[str, list[str]]) -> None:
    for sql in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql, params=None)  # None: "%" in PL/pgSQL is not a placeholder


def install(apps, schema_editor) -> None:
    _execute(schema_editor, {"sqlite": SQLITE, "postgresql": POSTGRES})


def drop(apps, schema_editor) -> None:
    _execute(schema_editor, {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP})
