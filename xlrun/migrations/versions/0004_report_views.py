"""Report views: pair_metrics and arm_pair_metrics.

The SQL is written here in full (not imported) so this migration never changes after it
ships; ``tests/db`` checks it against ``xlrun.db.models.VIEWS``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VIEWS = {
    "pair_metrics": """
        SELECT run_id, dataset, split, setting, query_lang, doc_lang,
               AVG(ap) AS map, AVG(ndcg_at_10) AS ndcg_at_10, AVG(mrr_at_10) AS mrr_at_10,
               AVG(recall_at_100) AS recall_at_100, COUNT(*) AS n_queries
        FROM query_results
        GROUP BY run_id, dataset, split, setting, query_lang, doc_lang
    """,
    "arm_pair_metrics": """
        SELECT r.experiment_id, r.model, r.sampler, r.language_sampling, r.clustering,
               q.dataset, q.split, q.setting, q.query_lang, q.doc_lang,
               AVG(q.ap) AS map, AVG(q.ndcg_at_10) AS ndcg_at_10,
               AVG(q.mrr_at_10) AS mrr_at_10, AVG(q.recall_at_100) AS recall_at_100,
               COUNT(*) AS n_queries, COUNT(DISTINCT q.run_id) AS n_runs
        FROM query_results q JOIN runs r ON r.id = q.run_id
        WHERE r.status = 'done'
        GROUP BY r.experiment_id, r.model, r.sampler, r.language_sampling, r.clustering,
                 q.dataset, q.split, q.setting, q.query_lang, q.doc_lang
    """,
}


def upgrade() -> None:
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW {name}")
