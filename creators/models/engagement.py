from django.db import models


class DailyEngagement(models.Model):
    """Engagement from paying (Premium) accounts with one creator's posts on one day, per pipeline source.

    Meant for hundreds of millions of rows (100k+ creators x 30 days x a few sources a month):

    - On PostgreSQL the table is RANGE-partitioned by month on ``day`` (raw SQL in the
      migration; partitions are created on demand by ``ensure_engagement_partitions``).
      A cycle reads exactly one month, so the planner prunes to one partition and the
      aggregate is a sequential scan of it: no secondary index would beat that, and every
      extra index would slow the ingestion path (>= 50k rows/s). Old months can be
      detached/archived without a DELETE.
    - The primary key (creator_id, day, source) is the idempotency key of ingestion
      (re-sending a day replaces it through ON CONFLICT DO UPDATE) and, being led by
      creator_id, also serves per-creator reads (eligibility's last-3-months impressions,
      the anomaly check of one creator). Partition key ``day`` is part of it, as PostgreSQL
      requires for a unique constraint on a partitioned table.
    - ``creator`` has no database FK constraint: a per-row FK trigger would cost more than
      the insert itself on bulk loads; ingestion joins the staged rows to the creator table
      instead, and rows for unknown creators are rejected.
    """

    pk = models.CompositePrimaryKey("creator_id", "day", "source")
    creator = models.ForeignKey(
        "creators.CreatorAccount", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    day = models.DateField()
    source = models.CharField(max_length=32)
    impressions = models.BigIntegerField(default=0)
    replies = models.BigIntegerField(default=0)
    likes = models.BigIntegerField(default=0)
    reposts = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "daily engagement"

    def __str__(self) -> str:
        return f"{self.creator_id} {self.day} {self.source}"
