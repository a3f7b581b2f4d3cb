"""tenancy: environments, key scopes, limits, budgets, issuers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:45:11.869892
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("budget_id", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("budget_id", "subject_id", "period_key", "kind"),
    )
    with op.batch_alter_table("budget_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_events_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("downgrade_to", sa.String(length=128), nullable=True),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budgets_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "environments",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )
    op.create_table(
        "jwt_issuers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=256), nullable=False),
        sa.Column("audience", sa.String(length=256), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer"),
    )
    with op.batch_alter_table("jwt_issuers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jwt_issuers_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "limits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "scope", "subject"),
    )
    with op.batch_alter_table("limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_limits_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_body_bytes", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("require_signature", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("signing_secret", sa.Text(), nullable=True))

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))

    # Every existing key's environment becomes a row; the policy version starts at 0.
    op.execute(
        "INSERT INTO environments (tenant_id, name, created_at)"
        " SELECT DISTINCT tenant_id, environment, CURRENT_TIMESTAMP FROM api_keys"
        " WHERE tenant_id IS NOT NULL"
    )
    op.execute("INSERT INTO policy_version (id, version) VALUES (1, 0)")

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint("uq_usage_records_event_id", ["event_id"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_records_event_id", type_="unique")
        batch_op.drop_column("event_id")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("allowed_models")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("signing_secret")
        batch_op.drop_column("require_signature")
        batch_op.drop_column("max_body_bytes")
        batch_op.drop_column("max_tokens")
        batch_op.drop_column("allowed_models")
        batch_op.drop_column("name")

    with op.batch_alter_table("limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_limits_tenant_id"))

    op.drop_table("limits")
    with op.batch_alter_table("jwt_issuers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jwt_issuers_tenant_id"))

    op.drop_table("jwt_issuers")
    op.drop_table("environments")
    with op.batch_alter_table("budgets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budgets_tenant_id"))

    op.drop_table("budgets")
    op.drop_table("policy_version")
    with op.batch_alter_table("budget_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_events_tenant_id"))

    op.drop_table("budget_events")
