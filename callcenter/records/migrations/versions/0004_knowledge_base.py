"""Knowledge base: articles get owner, scope, status and effective dates; version
history, per-organisation roles, public feedback, and the full-text index.

The index holds jieba-segmented text (callcenter.kb.text), written by
callcenter.kb.store: an FTS5 table ``kb_fts`` on SQLite (rowid = article id;
SQLite's FTS5 ``bm25()`` ranks, https://sqlite.org/fts5.html#the_bm25_function),
a ``kb_index`` table with a GIN-indexed ``tsvector`` on PostgreSQL (the
``simple`` configuration: the words are already segmented, so PostgreSQL must
not stem them; https://www.postgresql.org/docs/current/textsearch-controls.html).
Articles that existed before stay ``published`` and are indexed on upgrade.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('category', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('org', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('region', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('effective_from', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('effective_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='published'))
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('updated_by', sa.String(length=200), nullable=False, server_default=''))
        batch_op.create_unique_constraint(batch_op.f('uq_articles_key'), ['key'])
        batch_op.create_index(batch_op.f('ix_articles_org'), ['org'], unique=False)
        batch_op.create_index(batch_op.f('ix_articles_status'), ['status'], unique=False)

    op.create_table('article_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('why', sa.String(length=500), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('changed', sa.JSON(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_article_versions_article_id_articles'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_article_versions'))
    )
    op.create_index('ix_article_versions_article', 'article_versions', ['article_id', 'version'], unique=True)
    op.create_table('kb_roles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('org', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_roles'))
    )
    op.create_index('ix_kb_roles_who_org', 'kb_roles', ['who', 'org'], unique=True)
    op.create_table('kb_feedback',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('helpful', sa.Boolean(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_kb_feedback_article_id_articles'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_feedback'))
    )
    op.create_index(op.f('ix_kb_feedback_article_id'), 'kb_feedback', ['article_id'], unique=False)

    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute("CREATE VIRTUAL TABLE kb_fts USING fts5(title, tags, body, tokenize='unicode61')")
        # each word's document count, to leave words in most articles out of a query (store.search)
        op.execute("CREATE VIRTUAL TABLE kb_fts_vocab USING fts5vocab(kb_fts, 'row')")
    else:
        op.execute("CREATE TABLE kb_index (article_id INTEGER PRIMARY KEY REFERENCES articles(id) ON DELETE CASCADE,"
                   " doc tsvector NOT NULL)")
        op.execute("CREATE INDEX ix_kb_index_doc ON kb_index USING GIN (doc)")
    # articles from before: index them with the same code the store uses
    from callcenter.kb.store import reindex_all

    reindex_all(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute("DROP TABLE IF EXISTS kb_fts_vocab")
        op.execute("DROP TABLE IF EXISTS kb_fts")
    else:
        op.execute("DROP TABLE IF EXISTS kb_index")
    op.drop_index(op.f('ix_kb_feedback_article_id'), table_name='kb_feedback')
    op.drop_table('kb_feedback')
    op.drop_index('ix_kb_roles_who_org', table_name='kb_roles')
    op.drop_table('kb_roles')
    op.drop_index('ix_article_versions_article', table_name='article_versions')
    op.drop_table('article_versions')
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_status'))
        batch_op.drop_index(batch_op.f('ix_articles_org'))
        batch_op.drop_constraint(batch_op.f('uq_articles_key'), type_='unique')
        batch_op.drop_column('updated_by')
        batch_op.drop_column('version')
        batch_op.drop_column('status')
        batch_op.drop_column('effective_until')
        batch_op.drop_column('effective_from')
        batch_op.drop_column('region')
        batch_op.drop_column('org')
        batch_op.drop_column('category')
        batch_op.drop_column('key')
